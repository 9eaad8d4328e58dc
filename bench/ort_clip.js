#!/usr/bin/env node
// The ONNX Runtime peer of `forget bench clip`: times the towers tools/export_onnx.py exported
// from bench/torch_clip.py (ViT-B/32 shape, random weights, fp32) with onnxruntime-node's CPU
// provider, all graph optimisations on, medians after one warm-up. Written here.
// Usage: node bench/ort_clip.js [--dir build/onnx] [--batch 16] [--iters 5] [--threads N]
// onnxruntime-node is looked up in bench/node_modules (cd bench && npm install --ignore-scripts).
'use strict';
const os = require('os');
const path = require('path');

function arg(name, def) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

async function timed(fn, iters) {
  await fn();
  const t = [];
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((a, b) => a - b);
  const m = t.length >> 1;
  return t.length % 2 ? t[m] : (t[m - 1] + t[m]) / 2;
}

async function main() {
  const dir = arg('--dir', 'build/onnx'), batch = +arg('--batch', '16'), iters = +arg('--iters', '5');
  const threads = +arg('--threads', String(os.cpus().length));
  const ort = require(path.join(__dirname, 'node_modules', 'onnxruntime-node'));
  const opts = {intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
                executionMode: 'sequential'};
  const img = await ort.InferenceSession.create(path.join(dir, `clip-image-b${batch}.onnx`), opts);
  const txt = await ort.InferenceSession.create(path.join(dir, `clip-text-b${batch}.onnx`), opts);
  const px = new Float32Array(batch * 3 * 224 * 224);
  let s = 1;
  for (let i = 0; i < px.length; i++) { s = (s * 1103515245 + 12345) % 2147483648; px[i] = s / 1073741824 - 1; }
  const ids = new BigInt64Array(batch * 77);
  for (let n = 0; n < batch; n++) {
    for (let k = 1; k < 76; k++) ids[n * 77 + k] = BigInt(1000 + ((n * 7919 + k * 104729) % 40000));
    ids[n * 77] = 49406n, ids[n * 77 + 76] = 49407n;
  }
  const ti = await timed(() => img.run({pixels: new ort.Tensor('float32', px, [batch, 3, 224, 224])}), iters);
  const tt = await timed(() => txt.run({ids: new ort.Tensor('int64', ids, [batch, 77])}), iters);
  const version = require(path.join(__dirname, 'node_modules', 'onnxruntime-node', 'package.json')).version;
  console.log(JSON.stringify({onnxruntime: version, threads, batch, images_per_s: batch / ti,
                              texts77_per_s: batch / tt}));
}

main().catch((e) => { console.error('ort_clip.js: ' + e.message); process.exit(1); });
