// Writes FILE.gz and FILE.br beside each compressible file of a built site (the demo server sends
// them to browsers that accept them) and prints the sizes of the wasm: raw, gzip, brotli.
// usage: node compress.mjs SITE_DIR
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const COMPRESS = new Set(['.wasm', '.js', '.mjs', '.css', '.html', '.json', '.ts', '.svg']);
const root = process.argv[2];
if (!root) { console.error('usage: node compress.mjs SITE_DIR'); process.exit(2); }
const sizes = {};
function walk(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    // Fashion-MNIST's 150 MB of JSON: brotli at quality 11 would take minutes, for a local demo.
    if (entry.isDirectory()) { if (path.relative(root, file) !== path.join('data', 'fashion-mnist')) walk(file); continue; }
    if (!COMPRESS.has(path.extname(file))) continue;
    const body = fs.readFileSync(file);
    const gz = zlib.gzipSync(body, { level: 9 });
    const br = zlib.brotliCompressSync(body, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.length } });
    fs.writeFileSync(`${file}.gz`, gz);
    fs.writeFileSync(`${file}.br`, br);
    sizes[path.relative(root, file)] = { raw: body.length, gzip: gz.length, brotli: br.length };
  }
}
walk(root);
const wasm = Object.entries(sizes).filter(([f]) => f.endsWith('.wasm'));
for (const [f, s] of wasm) console.log(`compress: ${f}: ${s.raw} bytes raw, ${s.gzip} gzip, ${s.brotli} brotli`);
fs.writeFileSync(path.join(root, 'sizes.json'), JSON.stringify(sizes, null, 1));
