// Drives a running `strata serve` with the official openai package, as a
// client application would, and with plain fetch where the package cannot
// send what a test needs (malformed bodies, missing keys, the extra
// endpoints). run_openai_test.sh starts the server and passes:
//   node openai_client.mjs OPENAI_MODULE BASE_URL API_KEY STRATA_BIN MODEL_DIR SERVER_LOG SERVER_PID
// Exits 0 when every check passed; prints each check as it goes.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';

const [moduleDir, baseURL, apiKey, strataBin, modelDir, serverLog, serverPid] = process.argv.slice(2);
const { default: OpenAI } = await import(`${moduleDir}/index.mjs`);
const client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey, maxRetries: 0, timeout: 60_000 });
const model = (await client.models.list()).data[0].id;
const auth = { Authorization: `Bearer ${apiKey}` };

let failures = 0;
async function check(name, fn) {
  const start = Date.now();
  try {
    await fn();
    console.log(`ok   ${name} (${Date.now() - start} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}

async function post(path, body, headers = auth) {
  const res = await fetch(`${baseURL}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { status: res.status, json, text };
}

// An OpenAI error object with a message, as the issue asks of every bad input.
function assertError(res, status, pattern, param) {
  assert.equal(res.status, status, `status of ${res.text}`);
  const e = res.json?.error;
  assert.ok(e && typeof e.message === 'string' && e.message.length > 0, `no error message in ${res.text}`);
  assert.ok('type' in e && 'param' in e && 'code' in e, `not OpenAI's error object: ${res.text}`);
  if (pattern) assert.match(e.message, pattern);
  if (param !== undefined) assert.equal(e.param, param);
}

async function stillServing() {
  const health = await fetch(`${baseURL}/health`);
  assert.equal(health.status, 200);
  const r = await client.completions.create({ model, prompt: 'Once', max_tokens: 3, temperature: 0 });
  assert.equal(typeof r.choices[0].text, 'string');
}

async function streamChat(params) {
  const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, role = null, strata = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    if (chunk.strata) strata = chunk.strata;
    for (const c of chunk.choices) {
      if (c.delta?.role) role = c.delta.role;
      if (c.delta?.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish, usage, role, strata };
}

async function streamCompletion(params) {
  const stream = await client.completions.create({ ...params, stream: true });
  let text = '', finish = null;
  for await (const chunk of stream) for (const c of chunk.choices) {
    text += c.text;
    if (c.finish_reason) finish = c.finish_reason;
  }
  return { text, finish };
}

const chatParams = { model, messages: [{ role: 'user', content: 'Tell me a story about a cat.' }], max_tokens: 24, temperature: 0 };

await check('GET /v1/models, /health and /v1/strata/plan', async () => {
  assert.equal(typeof model, 'string');
  assert.equal((await fetch(`${baseURL}/health`)).status, 200);
  const plan = await (await fetch(`${baseURL}/v1/strata/plan`, { headers: auth })).json();
  assert.ok(plan.device_map && plan.bytes_per_token && plan.expected, JSON.stringify(plan));
  assert.ok(plan.bytes_per_token.weights > 0);
  assert.equal(plan.slots, 16);
});

let chatText;
await check('non-streamed chat completion', async () => {
  const r = await client.chat.completions.create(chatParams);
  const c = r.choices[0];
  assert.equal(r.object, 'chat.completion');
  assert.equal(c.message.role, 'assistant');
  assert.ok(c.message.content.length > 0);
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  assert.ok(r.usage.prompt_tokens > 0 && r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 24);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.ok(r.strata && r.strata.step_seconds >= 0 && r.strata.bytes_per_step.weights > 0, JSON.stringify(r.strata));
  chatText = { text: c.message.content, finish: c.finish_reason, usage: r.usage };
});

await check('streamed chat completion equals the non-streamed one', async () => {
  const s = await streamChat(chatParams);
  assert.equal(s.role, 'assistant');
  assert.equal(s.text, chatText.text);
  assert.equal(s.finish, chatText.finish);
  assert.deepEqual(s.usage, chatText.usage);
  assert.ok(s.strata, 'the last chunk carries the strata field');
});

await check('completions, streamed and not, with logprobs', async () => {
  const params = { model, prompt: 'Once upon a time', max_tokens: 20, temperature: 0 };
  const r = await client.completions.create({ ...params, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  const c = r.choices[0];
  assert.ok(c.text.length > 0);
  assert.equal(c.logprobs.tokens.length, r.usage.completion_tokens);
  assert.ok(c.logprobs.token_logprobs.every((x) => x <= 0));
  // Each token as it reads in the text, leading space included.
  assert.equal(c.logprobs.tokens.join(''), c.text);
  assert.equal(c.logprobs.text_offset.at(-1) + c.logprobs.tokens.at(-1).length, c.text.length);
  // Greedy: the chosen token is the most likely one.
  c.logprobs.token_logprobs.forEach((lp, i) => assert.ok(Math.max(...Object.values(c.logprobs.top_logprobs[i])) <= lp + 1e-9));
  const s = await streamCompletion(params);
  assert.equal(s.text, c.text);
  assert.equal(s.finish, c.finish_reason);
});

await check('chat logprobs', async () => {
  const r = await client.chat.completions.create({ ...chatParams, max_tokens: 5, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, r.usage.completion_tokens);
  assert.equal(content[0].top_logprobs.length, 3);
});

await check('stop strings across token boundaries', async () => {
  const full = (await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 30, temperature: 0 })).choices[0].text;
  // A stop string that spans several tokens in the middle of the text.
  const stop = full.slice(8, 14);
  const r = await client.completions.create({ model, prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stop: [stop] });
  assert.equal(r.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(r.choices[0].finish_reason, 'stop');
  const s = await streamCompletion({ model, prompt: 'Once upon a time', max_tokens: 30, temperature: 0, stop });
  assert.equal(s.text, r.choices[0].text);
});

await check('temperature 0 text equals strata generate for the same rendered prompt', async () => {
  const rendered = await post('/apply-template', { messages: chatParams.messages });
  assert.equal(rendered.status, 200);
  const prompt = rendered.json.prompt;
  const r = await client.chat.completions.create(chatParams);
  const out = execFileSync(strataBin, ['generate', '-m', modelDir, '-p', prompt, '--no-special', '--temp', '0', '-n',
                                       String(chatParams.max_tokens), '--json', '--compute', 'exact', '--quiet-map', '-t', '2'],
                           { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const gen = JSON.parse(out.trim().split('\n').pop());
  // The server's prompt is the same token for token...
  const tok = await post('/tokenize', { prompt, add_special_tokens: false });
  assert.deepEqual(tok.json.tokens, gen.prompt_ids);
  // ...and so are its tokens and its text: generate prints decode(prompt + new).
  assert.equal(r.usage.completion_tokens, gen.new_ids.length);
  const content = r.choices[0].message.content;
  assert.ok(gen.text.endsWith(content), `generate: ${JSON.stringify(gen.text)}\nserver:   ${JSON.stringify(content)}`);
  assert.equal(content.trim(), gen.new_text.trim());
});

await check('tools reach the template; a reply without a call passes the call parser whole', async () => {
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'The weather in a city',
                                                  parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
  const rendered = await post('/apply-template', { messages: chatParams.messages, tools });
  assert.match(rendered.json.prompt, /\[1 tools: get_weather\]/);
  assert.match(readFileSync(serverLog, 'utf8'), /tool calls: hermes/);
  const r = await client.chat.completions.create({ ...chatParams, tools });
  const c = r.choices[0];
  assert.ok(c.message.content.length > 0);
  assert.ok(!c.message.tool_calls || c.message.tool_calls.length === 0);
  assert.ok(['stop', 'length'].includes(c.finish_reason));
  const s = await streamChat({ ...chatParams, tools });
  assert.equal(s.text, c.message.content);
  assert.equal(s.finish, c.finish_reason);
});

await check('16 concurrent streams of different lengths each equal the same request alone', async () => {
  const requests = Array.from({ length: 16 }, (_, i) => ({
    model,
    messages: [{ role: 'user', content: `Story ${i}: ` + 'the little dog ran. '.repeat(1 + (i % 5)) }],
    // Long enough that all overlap although the client sends them one after the other.
    max_tokens: 64 + 4 * i,
    // Half greedy, half sampled with a seed: a sequence's draws do not depend on its batch.
    temperature: i % 2 ? 0.9 : 0,
    seed: 1000 + i,
  }));
  const alone = [];
  for (const r of requests) alone.push((await client.chat.completions.create(r)).choices[0].message.content);
  // Sixteen connections opened beforehand (kept alive by the client), so
  // that the streams leave at once even on a busy machine.
  await Promise.all(requests.map((r) => client.chat.completions.create({ ...r, max_tokens: 1 })));
  const logBefore = readFileSync(serverLog, 'utf8').length;
  const together = await Promise.all(requests.map((r) => streamChat(r)));
  together.forEach((s, i) => {
    assert.equal(s.text, alone[i], `request ${i} (max_tokens ${requests[i].max_tokens})`);
    assert.ok(s.usage.completion_tokens <= requests[i].max_tokens);
  });
  // The scheduler decoded them together: the batch's lines in the log.
  const log = readFileSync(serverLog, 'utf8').slice(logBefore);
  const rows = [...log.matchAll(/batch (\d+) running, \d+ waiting \| ([\d.]+) tok\/s.*last step (\d+) rows/g)];
  assert.ok(rows.length > 0, 'no batch line in the log');
  const most = Math.max(...rows.map((m) => Number(m[3])));
  console.log(`     the log's largest step: ${most} rows; its lines: ${rows.map((m) => `${m[1]} running ${m[2]} tok/s`).join(', ')}`);
  // All 16 at once unless the machine is so loaded that the first ended before the last arrived.
  assert.ok(most >= 12, `at most ${most} rows decoded together`);
});

await check('a client that leaves mid-stream frees its slot', async () => {
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { ...chatParams, max_tokens: 200, stream: true }, { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const chunk of stream) { void chunk; if (++chunks === 3) controller.abort(); }
  } catch (e) {
    assert.ok(e.name === 'APIUserAbortError' || e.name === 'AbortError', String(e));
  }
  // The server notices at its next step and says so.
  for (let i = 0; i < 50 && !/client left/.test(readFileSync(serverLog, 'utf8')); i++) await new Promise((r) => setTimeout(r, 100));
  assert.match(readFileSync(serverLog, 'utf8'), /client left/);
  await stillServing();
});

await check('malformed JSON: 400', async () => {
  assertError(await post('/v1/chat/completions', '{"model": "m", "messages": [}'), 400, /parse the JSON/);
  await stillServing();
});

await check('wrong types: 400', async () => {
  assertError(await post('/v1/chat/completions', { ...chatParams, max_tokens: '12' }), 400, /expected an integer/, 'max_tokens');
  assertError(await post('/v1/chat/completions', { ...chatParams, messages: 'hi' }), 400, /expected an array/, 'messages');
  assertError(await post('/v1/completions', { model, prompt: 'x', temperature: 'warm' }), 400, /expected a number/, 'temperature');
  await stillServing();
});

await check('unknown role: 400', async () => {
  assertError(await post('/v1/chat/completions', { model, messages: [{ role: 'wizard', content: 'hi' }] }), 400,
              /wizard/, 'messages[0].role');
  await stillServing();
});

await check('a prompt longer than the context: 400 saying by how much', async () => {
  const long = 'the little dog ran to the big red house. '.repeat(60);
  const noMax = await post('/v1/chat/completions', { model, messages: [{ role: 'user', content: long }] });
  assertError(noMax, 400, /by \d+ tokens?/);
  assert.equal(noMax.json.error.code, 'context_length_exceeded');
  // The same through the openai package: a BadRequestError with the message.
  await assert.rejects(client.chat.completions.create({ model, messages: [{ role: 'user', content: long }], max_tokens: 10 }),
                       (e) => e.status === 400 && /by \d+ tokens?/.test(e.message));
  // A short prompt with more new tokens than the context leaves.
  assertError(await post('/v1/completions', { model, prompt: 'Once', max_tokens: 5000 }), 400, /by \d+ tokens?/);
  await stillServing();
});

await check('missing or wrong bearer key: 401', async () => {
  assertError(await post('/v1/chat/completions', chatParams, {}), 401, /API key/);
  assertError(await post('/v1/chat/completions', chatParams, { Authorization: 'Bearer wrong' }), 401, /API key/);
  const res = await fetch(`${baseURL}/v1/models`);
  assert.equal(res.status, 401);
  const wrong = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'wrong', maxRetries: 0 });
  await assert.rejects(wrong.chat.completions.create(chatParams), (e) => e.status === 401);
  await stillServing();
});

await check('body too big: 413', async () => {
  const huge = JSON.stringify({ model, prompt: 'x'.repeat(200 * 1024) });
  assertError(await post('/v1/completions', huge), 413, /larger than this server takes/);
  await stillServing();
});

await check('tokenize, detokenize, unknown endpoint', async () => {
  const t = await post('/tokenize', { prompt: 'Once upon a time' });
  assert.equal(t.status, 200);
  assert.ok(t.json.tokens.length > 0);
  const d = await post('/detokenize', { tokens: t.json.tokens });
  assert.match(d.json.prompt, /Once upon a time/);
  assertError(await post('/detokenize', { tokens: [1, 99999] }), 400, /vocabulary/, 'tokens[1]');
  assertError(await post('/v1/nothing', {}), 404, /Unknown endpoint/);
});

await check('SIGTERM: the running stream finishes, then the server exits', async () => {
  const stream = await client.chat.completions.create({ ...chatParams, max_tokens: 120, stream: true });
  let chunks = 0, finish = null, sent = false;
  for await (const chunk of stream) {
    if (++chunks === 2 && !sent) { process.kill(Number(serverPid), 'SIGTERM'); sent = true; }
    for (const c of chunk.choices) if (c.finish_reason) finish = c.finish_reason;
  }
  assert.ok(sent);
  assert.ok(['length', 'stop'].includes(finish), `finish_reason ${finish}`);
});

if (failures > 0) {
  console.log(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all checks passed');
