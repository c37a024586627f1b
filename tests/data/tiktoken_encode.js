// Reference for tests/data/test_tokenizer_parity.py: the line protocol of `lnfree tokenize`, with
// npm tiktoken's "gpt2" encoding. Reads stdin, splits it on '\n' (a last line without '\n' still
// counts; an empty input has no lines), decodes each line as UTF-8 (ill-formed bytes become U+FFFD,
// WHATWG rules) and prints its ids separated by single spaces, one output line per input line.
// "<|endoftext|>" in the text is the special token: encode(line, "all"). Exits with status 3 when
// tiktoken cannot be loaded (set NODE_PATH to the node_modules folder holding it).
"use strict";
const fs = require("fs");

let tiktoken;
try {
  tiktoken = require("tiktoken");
} catch (e) {
  process.stderr.write(`tiktoken_encode.js: cannot load npm tiktoken: ${e.message}\n`);
  process.exit(3);
}

const input = fs.readFileSync(0);
const enc = tiktoken.get_encoding("gpt2");
const out = [];
let start = 0;
while (start < input.length) {
  let end = input.indexOf(0x0a, start);
  if (end < 0) end = input.length;
  const line = input.subarray(start, end).toString("utf8");
  out.push(enc.encode(line, "all").join(" "));
  start = end + 1;
}
enc.free();
fs.writeFileSync(1, out.length === 0 ? "" : out.join("\n") + "\n");
