import { runMain } from '@hookline/service-kit';
import { createApp } from './app';
import { loadConfig } from './config';

runMain('dispatcher', () => createApp(loadConfig(process.env)));
