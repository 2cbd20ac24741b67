#!/usr/bin/env node
/**
 * A fake OpenAI-compatible model server for the demo and the end-to-end tests. Node built-ins
 * only. Deterministic text; its version in every response; a configurable load delay.
 *
 * Environment:
 *   PORT (required), HOST (default 127.0.0.1)
 *   MODEL_NAME (default demo-llm), MODEL_VERSION (default v1)
 *   LOAD_DELAY_SECONDS   /health answers 503 until this long after start (default 0)
 *   NEVER_READY=1        /health always 503 (a version that never becomes ready)
 *   FAIL_RATE            fraction of /v1/* requests answered 500, every k-th (default 0)
 *   EXIT_AFTER_SECONDS   exit with code 1 after this long (a replica that dies; its last line
 *                        on stderr gives the time, `at <epoch ms> ms`)
 *   TOKEN_DELAY_MS       delay between streamed tokens (default 20)
 */
'use strict';
const http = require('node:http');

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('model server: PORT must be set to a port number\n');
  process.exit(2);
}
const host = process.env.HOST || '127.0.0.1';
const modelName = process.env.MODEL_NAME || 'demo-llm';
const version = process.env.MODEL_VERSION || 'v1';
const loadDelayMs = Number(process.env.LOAD_DELAY_SECONDS || 0) * 1000;
const neverReady = process.env.NEVER_READY === '1';
const failRate = Number(process.env.FAIL_RATE || 0);
const tokenDelayMs = Number(process.env.TOKEN_DELAY_MS ?? 20);
const started = Date.now();
let requestCount = 0;

const WORDS = ['the', 'model', 'answers', 'with', 'deterministic', 'words', 'for', 'every', 'prompt', 'it', 'receives', 'today'];

/** The same prompt always yields the same words. */
function generate(prompt, maxTokens) {
  let h = 2166136261;
  for (const ch of String(prompt)) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const out = [];
  for (let i = 0; i < maxTokens; i++) {
    h = Math.imul(h ^ i, 16777619) >>> 0;
    out.push(WORDS[h % WORDS.length]);
  }
  return out;
}

function ready() {
  return !neverReady && Date.now() - started >= loadDelayMs;
}

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'x-model-version': version });
  res.end(data);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      if (!text) return resolve({});
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}

function promptOf(body, chat) {
  if (chat) return (body.messages || []).map((m) => `${m.role}:${m.content}`).join('\n');
  return Array.isArray(body.prompt) ? body.prompt.join('\n') : body.prompt || '';
}

function completionChunk(id, chat, token, finish) {
  const choice = chat
    ? { index: 0, delta: token === null ? {} : { content: token }, finish_reason: finish }
    : { index: 0, text: token ?? '', finish_reason: finish };
  return { id, object: chat ? 'chat.completion.chunk' : 'text_completion', created: Math.floor(started / 1000), model: modelName, model_version: version, choices: [choice] };
}

async function complete(req, res, chat) {
  let body;
  try {
    body = await readBody(req);
  } catch {
    return sendJson(res, 400, { error: { message: 'request body is not valid JSON', type: 'invalid_request_error' } });
  }
  const tokens = generate(promptOf(body, chat), Math.max(1, Math.min(Number(body.max_tokens) || 16, 512)));
  const id = `${chat ? 'chatcmpl' : 'cmpl'}-${version}-${requestCount}`;
  if (body.stream) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-model-version': version });
    res.flushHeaders();
    let aborted = false;
    res.on('close', () => (aborted = !res.writableFinished));
    for (let i = 0; i < tokens.length && !aborted; i++) {
      res.write(`data: ${JSON.stringify(completionChunk(id, chat, (i ? ' ' : '') + tokens[i], null))}\n\n`);
      await new Promise((r) => setTimeout(r, tokenDelayMs));
    }
    if (aborted) return;
    res.write(`data: ${JSON.stringify(completionChunk(id, chat, null, 'length'))}\n\n`);
    res.end('data: [DONE]\n\n');
    return;
  }
  const text = tokens.join(' ');
  const usage = { prompt_tokens: promptOf(body, chat).split(/\s+/).filter(Boolean).length, completion_tokens: tokens.length };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  const choice = chat ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' } : { index: 0, text, finish_reason: 'length' };
  sendJson(res, 200, { id, object: chat ? 'chat.completion' : 'text_completion', created: Math.floor(Date.now() / 1000), model: modelName, model_version: version, choices: [choice], usage });
}

/** Set on SIGTERM: health turns 503 so probes stop counting this replica as ready. */
let stopping = false;

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://model');
  // While stopping, a request on a kept-alive connection is served but the connection is not kept.
  if (stopping) res.setHeader('connection', 'close');
  if (url.pathname === '/health') {
    const status = stopping ? 'stopping' : ready() ? 'ok' : 'loading';
    const body = { status, model_version: version };
    if (process.env.CUDA_VISIBLE_DEVICES !== undefined) body.gpus = process.env.CUDA_VISIBLE_DEVICES;
    return sendJson(res, status === 'ok' ? 200 : 503, body);
  }
  if (url.pathname.startsWith('/v1/')) {
    requestCount += 1;
    if (failRate > 0 && requestCount % Math.max(1, Math.round(1 / failRate)) === 0) {
      return sendJson(res, 500, { error: { message: 'injected failure (FAIL_RATE)', type: 'server_error' }, model_version: version });
    }
    if (!ready()) return sendJson(res, 503, { error: { message: 'model is loading', type: 'server_error' }, model_version: version });
  }
  if (req.method === 'GET' && url.pathname === '/v1/models') {
    return sendJson(res, 200, { object: 'list', data: [{ id: modelName, object: 'model', owned_by: 'gpu-rollout', model_version: version }] });
  }
  if (req.method === 'POST' && url.pathname === '/v1/completions') return void complete(req, res, false);
  if (req.method === 'POST' && url.pathname === '/v1/chat/completions') return void complete(req, res, true);
  sendJson(res, 404, { error: { message: `no route ${req.method} ${url.pathname}`, type: 'invalid_request_error' } });
});

server.listen(port, host, () => {
  process.stdout.write(`model server ${version} (${modelName}) listening on ${host}:${port}, ready in ${neverReady ? 'never' : `${loadDelayMs / 1000}s`}\n`);
});

// SIGTERM: stop accepting, let in-flight requests (streams too) finish, then exit 0 (30 s at most).
// server.close() alone would also wait for kept-alive connections that go idle *after* it was
// called, so idle ones are swept until none is left.
process.on('SIGTERM', () => {
  if (stopping) return;
  stopping = true;
  process.stdout.write(`model server ${version}: SIGTERM, finishing requests in flight\n`);
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  server.close(() => {
    clearInterval(sweep);
    process.exit(0);
  });
  server.closeIdleConnections();
  setTimeout(() => process.exit(0), 30_000).unref();
});

if (process.env.EXIT_AFTER_SECONDS) {
  setTimeout(() => {
    // The epoch time of the exit, so that a benchmark can measure from the moment the process died.
    process.stderr.write(`model server ${version}: exiting after ${process.env.EXIT_AFTER_SECONDS}s (EXIT_AFTER_SECONDS) at ${Date.now()} ms\n`);
    process.exit(1);
  }, Number(process.env.EXIT_AFTER_SECONDS) * 1000);
}
