// Promise wrapper for ts-proto grpc-js client methods, with a deadline on every call.
import { Metadata, type CallOptions, type ServiceError } from '@grpc/grpc-js';

type UnaryMethod<Req, Res> = (req: Req, metadata: Metadata, options: Partial<CallOptions>, callback: (err: ServiceError | null, res: Res) => void) => unknown;

export function rpc<Req, Res>(method: UnaryMethod<Req, Res>, req: Req, timeoutMs = 10_000): Promise<Res> {
  return new Promise((resolve, reject) => {
    method(req, new Metadata(), { deadline: new Date(Date.now() + timeoutMs) }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}
