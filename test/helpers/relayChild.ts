// A relay in a child process, for the test that SIGKILLs Node and checks its re-encoder process (FFmpeg, or the libav engine) dies too.
import { createRelay } from '../../src/index.js';
import { startTestBroadcaster } from './testBroadcaster.js';

const relay = await createRelay({ workers: 1 });
const broadcast = await relay.createBroadcast({ id: 'child', engine: process.env.RELAY_CHILD_ENGINE === 'ffmpeg' ? 'ffmpeg' : 'libav', video: { width: 320, height: 180, fps: 15, bitrateKbps: 200 } });
await startTestBroadcaster(broadcast, { width: 320, height: 180, fps: 15, audio: false });
process.stdout.write(`ffmpeg-pid ${broadcast.reencoder('video')!.pid}\n`);
setInterval(() => undefined, 1000);
