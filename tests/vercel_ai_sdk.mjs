// The Vercel AI SDK (`ai`, with `@ai-sdk/openai` and `@ai-sdk/openai-compatible`) against the gateway, called as a
// user calls it. tests/test_vercel_ai_sdk.py runs it with `node --input-type=module --eval` from the directory the
// packages are installed in, the cases on stdin: {"url", "key", "cases": [{"name", "call", "sdk", "model", "key"?,
// "options"?}]}. It prints one JSON object: each case's name -> {"ok": what the call gave} or {"error": what it
// threw, with what an APICallError carries}. Each case's prompt starts with "[name]", so the test can find what
// reached the fake providers for it.
import { createOpenAI } from "@ai-sdk/openai";
import { createOpenAICompatible } from "@ai-sdk/openai-compatible";
import { embed, embedMany, generateObject, generateText, stepCountIs, streamObject, streamText, tool } from "ai";
import { z } from "zod";

globalThis.AI_SDK_LOG_WARNINGS = false; // the SDK logs them to stdout, where the results go

const WEATHER = z.object({ city: z.string(), temp: z.number() });

function models(input, c) {
  const options = { baseURL: `${input.url}/v1`, apiKey: c.key ?? input.key };
  if (c.sdk.startsWith("openai")) {
    const openai = createOpenAI(options);
    // `openai(id)` speaks OpenAI's Responses API; a user pointing @ai-sdk/openai at another server uses `.chat`.
    const chat = c.sdk === "openai-responses" ? openai : openai.chat;
    return { chat, embedding: openai.embedding };
  }
  const compatible = createOpenAICompatible({ ...options, name: "gateway", includeUsage: true,
                                              supportsStructuredOutputs: c.sdk === "compatible-structured" });
  return { chat: compatible.chatModel, embedding: compatible.textEmbeddingModel };
}

function weatherTools(asked) {
  return { get_weather: tool({ description: "Weather in a city", inputSchema: z.object({ city: z.string() }),
                               execute: async ({ city }) => { asked.push(city); return { temp: 21 }; } }) };
}

const usage = (u) => u && { inputTokens: u.inputTokens, outputTokens: u.outputTokens, totalTokens: u.totalTokens };
const steps = (all) => all.map((step) => ({ finishReason: step.finishReason, text: step.text,
                                            toolCalls: step.toolCalls.map((c) => [c.toolName, c.input]) }));

// A stream's errors reach onError (and its error parts) rather than being thrown: they are collected, and the
// awaited results of a stream that failed are null.
async function drained(result, errors, read) {
  const pieces = [];
  for await (const piece of read(result)) pieces.push(piece);
  const finishReason = await result.finishReason.catch(() => null);
  return { pieces, finishReason, errors, failed: finishReason === null };
}

const CALLS = {
  async generateText(model, prompt, options) {
    const result = await generateText({ model, prompt, maxRetries: 0, ...options });
    return { text: result.text, finishReason: result.finishReason, usage: usage(result.usage),
             reasoning: result.reasoningText ?? null, headers: result.response.headers };
  },
  async streamText(model, prompt, options) {
    const errors = [];
    const result = streamText({ model, prompt, maxRetries: 0, ...options,
                                onError: ({ error }) => { errors.push(described(error)); } });
    const seen = await drained(result, errors, (r) => r.textStream);
    return { ...seen, usage: seen.failed ? null : usage(await result.usage),
             reasoning: seen.failed ? null : (await result.reasoningText) ?? null };
  },
  async toolLoop(model, prompt) {
    const asked = [];
    const result = await generateText({ model, prompt, tools: weatherTools(asked), stopWhen: stepCountIs(3),
                                        maxRetries: 0 });
    return { text: result.text, finishReason: result.finishReason, asked, steps: steps(result.steps),
             usage: usage(result.totalUsage) };
  },
  async streamToolLoop(model, prompt) {
    const asked = [];
    const errors = [];
    const result = streamText({ model, prompt, tools: weatherTools(asked), stopWhen: stepCountIs(3), maxRetries: 0,
                                onError: ({ error }) => { errors.push(described(error)); } });
    const seen = await drained(result, errors, (r) => r.textStream);
    return { text: seen.pieces.join(""), finishReason: seen.finishReason, asked, errors,
             steps: steps(await result.steps), usage: usage(await result.totalUsage) };
  },
  async generateObject(model, prompt) {
    const result = await generateObject({ model, schema: WEATHER, prompt, maxRetries: 0 });
    return { object: result.object, finishReason: result.finishReason, usage: usage(result.usage) };
  },
  async streamObject(model, prompt) {
    const errors = [];
    const result = streamObject({ model, schema: WEATHER, prompt, maxRetries: 0,
                                  onError: ({ error }) => { errors.push(described(error)); } });
    let partials = 0;
    for await (const partial of result.partialObjectStream) partials += partial ? 1 : 0;
    return { object: await result.object, partials, usage: usage(await result.usage), errors };
  },
  async embed(model, prompt) {
    const result = await embed({ model, value: prompt, maxRetries: 0 });
    return { embeddings: [result.embedding], usage: result.usage };
  },
  async embedMany(model, prompt) {
    const result = await embedMany({ model, values: [prompt, "bb", "ccc"], maxRetries: 0 });
    return { embeddings: result.embeddings, usage: result.usage };
  },
};

function described(error) {
  const seen = { name: error?.name ?? null, message: error?.message ?? String(error) };
  for (const field of ["statusCode", "isRetryable", "responseHeaders"]) {
    if (error?.[field] !== undefined) seen[field] = error[field];
  }
  return seen;
}

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8").on("data", (data) => { text += data; }).on("end", () => resolve(text));
}));
const results = {};
for (const c of input.cases) {
  const chosen = models(input, c);
  const model = c.call.startsWith("embed") ? chosen.embedding(c.model) : chosen.chat(c.model);
  try {
    results[c.name] = { ok: await CALLS[c.call](model, `[${c.name}] Weather in Paris?`, c.options ?? {}) };
  } catch (error) {
    results[c.name] = { error: described(error) };
  }
}
process.stdout.write(JSON.stringify(results));
