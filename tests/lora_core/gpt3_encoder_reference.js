// Runs the npm package gpt-3-encoder's own encode() (its Encoder.js, kept in
// the asset folder by scripts/setup.sh) over a JSON list of strings and
// prints a JSON list of id lists. Usage: node gpt3_encoder_reference.js
// ENCODER_JS LINES_JSON
const fs = require('fs');
const { encode } = require(process.argv[2]);
const lines = JSON.parse(fs.readFileSync(process.argv[3], 'utf-8'));
process.stdout.write(JSON.stringify(lines.map((line) => encode(line))));
