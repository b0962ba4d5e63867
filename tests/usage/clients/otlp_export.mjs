// Exports GenAI spans with the official Node.js OpenTelemetry SDK and OTLP exporter (package.json,
// pinned) to the URL given, as an instrumented Node service would: a batch span processor, then
// shutdown (which flushes). Prints one JSON line: what the exporter reported.
//
// Usage: node otlp_export.mjs <proto|http> <url> <service token> <api key public id> <count> <gzip|none>
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";

const [protocol, url, token, apiKey, countText, compression] = process.argv.slice(2);
const count = Number(countText);
const Exporter = protocol === "proto" ? ProtoExporter : JsonExporter;
const exporter = new Exporter({ url, headers: { Authorization: `Bearer ${token}` }, compression });

const results = [];
const original = exporter.export.bind(exporter);
exporter.export = (spans, done) => original(spans, (result) => { results.push(result.code); done(result); });

const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "node-gateway", "usage_statistics.api_key": apiKey }),
  spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 512, scheduledDelayMillis: 50 })],
});
const tracer = provider.getTracer("node-genai");

for (let i = 0; i < count; i++) {
  // Every fourth call an embeddings call: the conventions give it input tokens only.
  const embeddings = i % 4 === 3;
  const span = tracer.startSpan(embeddings ? "embeddings public/embed" : "chat public/deepseek-r1");
  span.setAttributes({
    "gen_ai.operation.name": embeddings ? "embeddings" : "chat",
    "gen_ai.request.model": embeddings ? "public/embed" : "public/deepseek-r1",
    "gen_ai.response.id": `node-${protocol}-${i}`,
    "gen_ai.usage.input_tokens": 100 + i,
  });
  if (!embeddings) span.setAttribute("gen_ai.usage.output_tokens", i + 1);
  span.end();
}
const plain = tracer.startSpan("GET /health");
plain.end();

await provider.shutdown();
console.log(JSON.stringify({ results }));
