import { benchInviteLatency } from './invite-latency.bench.js';
import { openBenchDatabase } from './support.js';
// Runs only the end-to-end invite bench (for tuning): BENCH_INVITE_RATE, BENCH_INVITE_SECONDS.
const db = await openBenchDatabase();
try {
  const r = await benchInviteLatency(db.url, (l) => console.log(l), { rate: Number(process.env.BENCH_INVITE_RATE ?? 100) });
  console.log(JSON.stringify(r, null, 1));
} finally {
  await db.close();
}
