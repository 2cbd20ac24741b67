/** The example model server, as a real process: readiness after its load delay, OpenAI shapes, streaming. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../helpers/ports';
import { readStream } from '../helpers/read-stream';
import { waitUntil } from '../helpers/wait';

const exitOf = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));
const SERVER = path.resolve(__dirname, '../../examples/model-server/server.js');
let child: ChildProcess;

/** The parts of OpenAI's response shapes these tests read. */
interface OpenAiResponse {
  object: string;
  model_version: string;
  choices: Array<{ text?: string; message?: { role: string; content: string } }>;
  data: Array<{ id: string; object: string }>;
}
const json = async (res: Response) => (await res.json()) as OpenAiResponse;
let base: string;
let stdout = '';

async function start(env: Record<string, string>): Promise<void> {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  stdout = '';
  child = spawn(process.execPath, [SERVER], { env: { ...process.env, PORT: String(port), ...env }, stdio: ['ignore', 'pipe', 'ignore'] });
  child.stdout!.on('data', (c) => (stdout += c));
  await waitUntil(() => fetch(`${base}/health`).then(() => true, () => false), 'the model server to listen', 30_000, 50);
}

afterEach(async () => {
  if (child.exitCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  }
});

test('/health is 503 while loading, 200 after LOAD_DELAY_SECONDS', async () => {
  const startedAt = Date.now();
  await start({ MODEL_VERSION: 'v9', LOAD_DELAY_SECONDS: '3' });
  const loading = await fetch(`${base}/health`);
  // 3 s of loading: enough that a busy machine still sees it loading right after it listens.
  expect(loading.status).toBe(503);
  expect(await loading.json()).toEqual({ status: 'loading', model_version: 'v9' });
  let ready = loading;
  await waitUntil(async () => (ready = await fetch(`${base}/health`)).status === 200, 'the model to load', 30_000, 100);
  expect(Date.now() - startedAt).toBeGreaterThanOrEqual(3000);
  expect(ready.headers.get('x-model-version')).toBe('v9');
});

test('NEVER_READY stays 503', async () => {
  await start({ NEVER_READY: '1' });
  expect((await fetch(`${base}/health`)).status).toBe(503);
});

test('completions and chat completions: deterministic text, OpenAI shapes, version in body and header', async () => {
  await start({ MODEL_VERSION: 'v2' });
  const post = (p: string, body: unknown) => fetch(`${base}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const a = await json(await post('/v1/completions', { prompt: 'hello', max_tokens: 5 }));
  const b = await json(await post('/v1/completions', { prompt: 'hello', max_tokens: 5 }));
  expect(a.object).toBe('text_completion');
  expect(a.model_version).toBe('v2');
  expect(a.choices[0].text?.split(' ')).toHaveLength(5);
  expect(b.choices[0].text).toBe(a.choices[0].text);
  const chat = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] });
  expect(chat.headers.get('x-model-version')).toBe('v2');
  const c = await json(chat);
  expect(c.choices[0].message?.role).toBe('assistant');
  const models = await json(await fetch(`${base}/v1/models`));
  expect(models.data[0]).toMatchObject({ id: 'demo-llm', object: 'model' });
});

test('stream: true sends SSE chunks as tokens are produced, ending with [DONE]', async () => {
  await start({ TOKEN_DELAY_MS: '250' });
  const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 8 }) });
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const { text, firstToLastMs } = await readStream(res);
  // 8 tokens 250 ms apart arrive as produced: the last one about 2 s after the first (a buffered
  // answer would come in one piece; only a stall of the test process longer than that could
  // merge them, and a stall only makes the gap longer for the chunks read after it).
  expect(firstToLastMs).toBeGreaterThanOrEqual(1000);
  const events = text.split('\n\n').filter(Boolean);
  expect(events[events.length - 1]).toBe('data: [DONE]');
  expect(JSON.parse(events[0].slice(6)).object).toBe('chat.completion.chunk');
});

test('logs one line at start with version, port and load delay; CUDA_VISIBLE_DEVICES shows as gpus', async () => {
  await start({ MODEL_VERSION: 'v3', CUDA_VISIBLE_DEVICES: '2,3', LOAD_DELAY_SECONDS: '0' });
  await waitUntil(() => stdout.includes('\n'), 'the start line on stdout (the pipe may lag the socket)', 30_000);
  expect(stdout).toMatch(new RegExp(`^model server v3 \\(demo-llm\\) listening on 127\\.0\\.0\\.1:${new URL(base).port}, ready in 0s\n$`));
  expect(await (await fetch(`${base}/health`)).json()).toEqual({ status: 'ok', model_version: 'v3', gpus: '2,3' });
});

test('FAIL_RATE fails every k-th /v1 request, deterministically; /health is not counted', async () => {
  await start({ FAIL_RATE: '0.25' });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) {
    await fetch(`${base}/health`);
    const res = await fetch(`${base}/v1/models`);
    await res.text();
    statuses.push(res.status);
  }
  expect(statuses).toEqual([200, 200, 200, 500, 200, 200, 200, 500]);
});

test('EXIT_AFTER_SECONDS: the process dies with code 1', async () => {
  await start({ EXIT_AFTER_SECONDS: '0.5' });
  expect(await exitOf(child)).toBe(1);
});

test('SIGTERM: a stream in flight finishes with [DONE], new connections are refused, exit code 0', async () => {
  await start({ TOKEN_DELAY_MS: '100' });
  const res = await fetch(`${base}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'x', stream: true, max_tokens: 10 }) });
  // The headers are in: the stream is in flight (10 tokens, 100 ms apart) when SIGTERM comes.
  const reading = readStream(res);
  child.kill('SIGTERM');
  const refused = () => fetch(`${base}/health`, { headers: { connection: 'close' } }).then(() => false, () => true);
  await waitUntil(refused, 'the server to stop accepting connections after SIGTERM', 30_000);
  const { text } = await reading;
  expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  expect(text.split('\n\n').filter((e) => e.startsWith('data: {')).length).toBe(11); // 10 tokens + the finish chunk
  expect(await exitOf(child)).toBe(0);
});
