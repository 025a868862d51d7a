import { runMain } from '@hookline/service-kit';
import { createApp } from './app';
import { loadConfig } from './config';

runMain('endpoint-registry', () => createApp(loadConfig(process.env)));
