import { runMain } from '@hookline/service-kit';
import { createApp } from './app';
import { loadConfig } from './config';

runMain('portal', () => createApp(loadConfig(process.env)));
