// Jest setup of the integration and e2e projects: the kafkajs clients tests make themselves get
// the fix the services get from createKafka (kafkajs' 1 ms timer and its TimeoutNegativeWarning).
import { fixRequestQueue } from '../src/request-queue-fix';

fixRequestQueue();
