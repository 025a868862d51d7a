// Telemetry first: it must be set up before anything loads grpc-js, kafkajs or mongoose.
import './instrument';
import { runMain } from '@hookline/service-kit';
import { createApp } from './app';
import { loadConfig } from './config';

runMain('endpoint-registry', () => createApp(loadConfig(process.env)));
