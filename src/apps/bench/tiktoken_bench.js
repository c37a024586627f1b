// Times npm tiktoken's "gpt2" encoding for `lnfree bench tokenize`.
//   node tiktoken_bench.js REPEATS FILE...
// The files are concatenated byte for byte in the order given and decoded as UTF-8 once; each
// repeat times only enc.encode(text, "all") (loading and decoding excluded). Prints one JSON object
// {bytes, tokens, seconds: [...], best_seconds, tiktoken, node}. Exits with status 3 when tiktoken
// cannot be loaded (NODE_PATH must point at a node_modules folder holding it).
"use strict";
const fs = require("fs");

let tiktoken;
let version;
try {
  tiktoken = require("tiktoken");
  // package.json is not in tiktoken's "exports": read it next to the resolved entry point.
  const path = require("path");
  const packageJson = path.join(path.dirname(require.resolve("tiktoken")), "package.json");
  version = JSON.parse(fs.readFileSync(packageJson, "utf8")).version;
} catch (e) {
  process.stderr.write(`tiktoken_bench.js: cannot load npm tiktoken: ${e.message}\n`);
  process.exit(3);
}

const repeats = Number.parseInt(process.argv[2], 10);
const files = process.argv.slice(3);
if (!(repeats >= 1) || files.length === 0) {
  process.stderr.write("usage: node tiktoken_bench.js REPEATS FILE...\n");
  process.exit(2);
}
const bytes = Buffer.concat(files.map((f) => fs.readFileSync(f)));
const text = bytes.toString("utf8");
const enc = tiktoken.get_encoding("gpt2");
const seconds = [];
let tokens = 0;
for (let r = 0; r < repeats; r++) {
  const start = process.hrtime.bigint();
  const ids = enc.encode(text, "all");
  const stop = process.hrtime.bigint();
  seconds.push(Number(stop - start) / 1e9);
  tokens = ids.length;
}
enc.free();
process.stdout.write(
  JSON.stringify({
    bytes: bytes.length,
    tokens,
    seconds,
    best_seconds: Math.min(...seconds),
    tiktoken: version,
    node: process.version,
  }) + "\n",
);
