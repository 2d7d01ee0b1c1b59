// Load for `strata serve`: N clients at once, each streaming one completion
// of MAX_TOKENS tokens (greedy, prompts of different lengths), through
// Node's fetch on loopback. Prints one JSON line: clients, wall seconds,
// completion tokens (from each stream's usage), tokens/s of all clients
// together, and the median and worst time to first token.
// Usage: node bench/serve_load.mjs URL CLIENTS MAX_TOKENS
const [url, clientsArg, maxTokensArg] = process.argv.slice(2);
const clients = Number(clientsArg), maxTokens = Number(maxTokensArg);
const words = 'the quick brown fox jumps over the lazy dog and then runs far away into the woods'.split(' ');

async function one(i) {
  const prompt = Array.from({ length: 8 + 3 * i }, (_, k) => words[(k + i) % words.length]).join(' ');
  const start = performance.now();
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: maxTokens, temperature: 0, stream: true,
                           stream_options: { include_usage: true } }),
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}: ${await response.text()}`);
  let firstToken = null, tokens = 0, buffered = '';
  const decoder = new TextDecoder();
  for await (const bytes of response.body) {
    buffered += decoder.decode(bytes, { stream: true });
    let end;
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const event = buffered.slice(0, end);
      buffered = buffered.slice(end + 2);
      if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
      const chunk = JSON.parse(event.slice(6));
      if (chunk.choices?.length && chunk.choices[0].text && firstToken === null) firstToken = performance.now() - start;
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
    }
  }
  return { firstToken: firstToken ?? performance.now() - start, tokens };
}

const start = performance.now();
const results = await Promise.all(Array.from({ length: clients }, (_, i) => one(i)));
const seconds = (performance.now() - start) / 1000;
const firsts = results.map((r) => r.firstToken / 1000).sort((a, b) => a - b);
const tokens = results.reduce((sum, r) => sum + r.tokens, 0);
console.log(JSON.stringify({
  clients, seconds, tokens, tokens_per_second: tokens / seconds,
  first_token_median_s: firsts[Math.floor(firsts.length / 2)], first_token_max_s: firsts[firsts.length - 1],
}));
