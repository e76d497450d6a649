import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { createChannel, listChannels, updateChannel } from './channels/channel-admin.service.js';
import { ChannelInputError, channelIdSchema, createChannelSchema, patchChannelSchema } from './channels/channel.schema.js';
import { channelReport, channelSubscribers, reportQuerySchema, subscribersQuerySchema } from './channels/owner-reports.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { DomainError } from './domain/errors.js';
import { checkBooks } from './payouts/books.js';
import { balances } from './payouts/ledger.repo.js';
import { openDatabase } from './persistence/database.js';
import { migrate } from './persistence/migrate.js';

// The admin API's channel commands for a shell: same schemas, same rules, same database as the service.
//   npm run cli -- channels add --file channel.json
//   npm run cli -- channels list
//   npm run cli -- channels update <open_channel_id> --file patch.json
//   npm run cli -- ledger check          (exit 1 when the books do not balance)
//   npm run cli -- ledger balances
//   npm run cli -- owner subscribers <open_channel_id> [--status active|expired|removed] [--limit 200]
//   npm run cli -- owner report <open_channel_id> [--period day|week|month] [--from 2026-01-01] [--to 2026-07-01]
// Results are JSON on stdout; problems go to stderr, each naming its field, with exit code 1 (2 for usage).

const USAGE = `Usage:
  npm run cli -- channels add --file channel.json
  npm run cli -- channels list
  npm run cli -- channels update <open_channel_id> --file patch.json
  npm run cli -- ledger check
  npm run cli -- ledger balances
  npm run cli -- owner subscribers <open_channel_id> [--status active|expired|removed] [--limit 200]
  npm run cli -- owner report <open_channel_id> [--period day|week|month] [--from 2026-01-01] [--to 2026-07-01]

ledger check proves payouts + fees + exchange differences + open balances = settled payment outcomes,
exactly, and lists any payment whose money is unaccounted for (exit code 1 when there is one).

Connects to DATABASE_URL, or to the embedded Postgres the service uses when it is unset.
See POST /admin/channels in /docs/openapi.json for the file format.`;

class UsageError extends Error {}

async function readJson(path: string | undefined): Promise<unknown> {
  if (!path) throw new UsageError('--file <path.json> is required');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ChannelInputError([{ field: '', message: `${path} is not valid JSON: ${(error as Error).message}` }]);
  }
}

/**
 * Without DATABASE_URL the service runs an embedded Postgres; a second one cannot start on the same data
 * directory while the service holds it, so when that server already answers we connect to it instead.
 */
async function withRunningEmbedded(config: Config): Promise<Config> {
  if (config.DATABASE_URL) return config;
  const url = `postgres://postgres:postgres@127.0.0.1:${config.EMBEDDED_PG_PORT}/postgres`;
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  try {
    await client.connect();
    return { ...config, DATABASE_URL: url };
  } catch {
    return config;
  } finally {
    await client.end().catch(() => {});
  }
}

async function run(argv: string[]): Promise<unknown> {
  // Channel ids are negative: "-100..." must reach us as a positional, not be read as short options.
  const isId = (arg: string) => /^-\d/.test(arg);
  let parsedArgs;
  try {
    parsedArgs = parseArgs({
      args: [...argv.filter((a) => !isId(a)), '--', ...argv.filter(isId)],
      allowPositionals: true,
      options: {
        file: { type: 'string', short: 'f' },
        help: { type: 'boolean', short: 'h' },
        // owner subscribers / owner report
        status: { type: 'string' },
        limit: { type: 'string' },
        period: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsedArgs;
  const [group, command, id] = positionals;
  if (values.help || (group !== 'channels' && group !== 'ledger' && group !== 'owner') || !command) throw new UsageError(values.help ? '' : 'unknown command');

  let action: (pool: pg.Pool) => Promise<unknown>;
  if (group === 'ledger' && command === 'check' && !id) {
    action = async (pool) => {
      const client = await pool.connect();
      try {
        // One snapshot for every sum.
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        const books = await checkBooks(client);
        await client.query('COMMIT');
        if (!books.balanced) process.exitCode = 1;
        return books;
      } finally {
        client.release();
      }
    };
  } else if (group === 'ledger' && command === 'balances' && !id) {
    action = async (pool) => ({ balances: (await balances(pool)).map((b) => JSON.parse(JSON.stringify(b, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as unknown) });
  } else if (group === 'ledger') {
    throw new UsageError(`unknown command: ledger ${positionals.slice(1).join(' ')}`);
  } else if (group === 'owner' && (command === 'subscribers' || command === 'report') && id) {
    // The owner's report and subscriber list, as GET /admin/channels/:id/report and /subscribers answer them.
    const channelId = channelIdSchema.safeParse(id);
    if (!channelId.success) throw ChannelInputError.fromZod(channelId.error, ['open_channel_id']);
    const given = (names: readonly ('status' | 'limit' | 'period' | 'from' | 'to')[]) => Object.fromEntries(names.flatMap((n) => (values[n] === undefined ? [] : [[n, values[n]]])));
    if (command === 'subscribers') {
      const query = subscribersQuerySchema.safeParse(given(['status', 'limit']));
      if (!query.success) throw ChannelInputError.fromZod(query.error);
      action = (pool) => channelSubscribers(pool, channelId.data, query.data);
    } else {
      const query = reportQuerySchema.safeParse(given(['period', 'from', 'to']));
      if (!query.success) throw ChannelInputError.fromZod(query.error);
      action = (pool) => channelReport(pool, channelId.data, query.data);
    }
  } else if (group === 'owner') {
    throw new UsageError(`unknown command: owner ${positionals.slice(1).join(' ')} (owner subscribers <open_channel_id>, owner report <open_channel_id>)`);
  } else if (command === 'list' && !id) {
    action = async (pool) => ({ channels: await listChannels(pool) });
  } else if (command === 'add' && !id) {
    const parsed = createChannelSchema.safeParse(await readJson(values.file));
    if (!parsed.success) throw ChannelInputError.fromZod(parsed.error);
    action = (pool) => createChannel(pool, parsed.data);
  } else if (command === 'update' && id) {
    const channelId = channelIdSchema.safeParse(id);
    if (!channelId.success) throw ChannelInputError.fromZod(channelId.error, ['open_channel_id']);
    const parsed = patchChannelSchema.safeParse(await readJson(values.file));
    if (!parsed.success) throw ChannelInputError.fromZod(parsed.error);
    action = (pool) => updateChannel(pool, channelId.data, parsed.data);
  } else {
    throw new UsageError(`unknown command: channels ${positionals.slice(1).join(' ')}`);
  }

  // Input is checked before connecting, so a typo in the file does not wait for a database.
  const config = await withRunningEmbedded(loadConfig());
  const db = await openDatabase(config, (message) => process.stderr.write(`${message}\n`));
  try {
    await migrate(db.pool);
    return await action(db.pool);
  } finally {
    await db.close();
  }
}

try {
  const result = await run(process.argv.slice(2));
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message ? `${error.message}\n\n` : ''}${USAGE}\n`);
    process.exitCode = 2;
  } else if (error instanceof ChannelInputError) {
    process.stderr.write(`Invalid input:\n${error.problems.map((p) => `  - ${p.field ? `${p.field}: ` : ''}${p.message}`).join('\n')}\n`);
    process.exitCode = 1;
  } else if (error instanceof DomainError || error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exitCode = 1;
  } else {
    throw error;
  }
}
