import { runMain } from '@hookline/service-kit';
import { createApp } from './app';
import { loadConfig } from './config';

runMain('event-ingest', () => createApp(loadConfig(process.env)));
