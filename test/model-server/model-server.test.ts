/** The example model server, as a real process: readiness after its load delay, OpenAI shapes, streaming. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { freePort } from '../helpers/dev-stack';
import { readStream } from '../helpers/read-stream';

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

async function start(env: Record<string, string>): Promise<void> {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [SERVER], { env: { ...process.env, PORT: String(port), ...env }, stdio: 'ignore' });
  for (let i = 0; i < 50; i++) {
    try {
      await fetch(`${base}/health`);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error('model server did not start');
}

afterEach(async () => {
  if (child.exitCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await gone;
  }
});

test('/health is 503 while loading, 200 after LOAD_DELAY_SECONDS', async () => {
  await start({ MODEL_VERSION: 'v9', LOAD_DELAY_SECONDS: '1' });
  const loading = await fetch(`${base}/health`);
  expect(loading.status).toBe(503);
  expect(await loading.json()).toEqual({ status: 'loading', model_version: 'v9' });
  await new Promise((r) => setTimeout(r, 1100));
  const ready = await fetch(`${base}/health`);
  expect(ready.status).toBe(200);
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
  await start({ TOKEN_DELAY_MS: '50' });
  const res = await fetch(`${base}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }], stream: true, max_tokens: 8 }) });
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const { text, firstToLastMs } = await readStream(res);
  expect(firstToLastMs).toBeGreaterThanOrEqual(300); // 8 tokens 50 ms apart arrive as produced
  const events = text.split('\n\n').filter(Boolean);
  expect(events[events.length - 1]).toBe('data: [DONE]');
  expect(JSON.parse(events[0].slice(6)).object).toBe('chat.completion.chunk');
});
