// Repro for finding 1 (reliability/README.md): on FerretDB 1.24 (SQLite) two concurrent updates
// of one document can lose one of them: a lease renewal (updateMany filtered on owner + pending)
// racing the outcome write ({state: succeeded}) puts the document back to pending.
//   MONGODB_URI=mongodb://127.0.0.1:<port>/ node reliability/repro/ferretdb-lost-update.mts
// Use a private FerretDB (reliability/run.sh prints one; or deploy/local/ferretdb.sh with your
// own HOOKLINE_STATE_DIR / HOOKLINE_MONGO_PORT). Prints how many of 200 successes were reverted.
import mongoose from 'mongoose';

const uri = process.env.MONGODB_URI ?? 'mongodb://127.0.0.1:27027/';
const c = mongoose.createConnection(uri, { dbName: `lostupdate_${process.pid}` });
await c.asPromise();
const col = c.collection<{ _id: string; state: string; owner: string; a: number; b: number }>('t');
let reverted = 0;
for (let i = 1; i <= 200; i++) {
  await col.insertOne({ _id: `d${i}`, a: 0, b: 0, state: 'pending', owner: 'X' });
  await Promise.all([
    // what the outcome write does
    col.updateOne({ _id: `d${i}`, owner: 'X' }, { $set: { state: 'succeeded', owner: '', a: 1 } }),
    // what DeliveryEngine.renewLeases does, at the same moment
    col.updateMany({ _id: { $in: [`d${i}`] }, owner: 'X', state: 'pending' }, { $set: { b: 1 } }),
  ]);
  if ((await col.findOne({ _id: `d${i}` }))?.state !== 'succeeded') reverted++;
}
console.log(JSON.stringify({ trials: 200, successRevertedToPending: reverted }));
await c.db!.dropDatabase();
await c.close();
