#!/usr/bin/env node
// Times ONNX Runtime's session.run on one .onnx model: the benchmark peer of bench/bench_onnx.py (bench only;
// never used by Kiln's library or tests). Install the peer outside the repository, then point NODE_PATH at it:
//
//   cd /work && mkdir -p ortpeer && cd ortpeer && npm install --ignore-scripts onnxruntime-node
//   NODE_PATH=/work/ortpeer/node_modules node bench/ort_runner.js --model M.onnx --input x=x.npy --threads 1
//
// Options:
//   --model PATH          the .onnx file
//   --input NAME=FILE     an input from a .npy file (float32, int64, int32, bool; C order), repeatable
//   --shape NAME=DIM      a symbolic dim's size, for inputs not given (random, --seed), repeatable
//   --seed N              seed of the random inputs (default 0): floats uniform in [-1, 1), ints in [0, 10)
//   --threads N           intra-op threads (default 1; inter-op threads 1, sequential execution)
//   --warmup N            untimed runs first (default 5)
//   --runs N              timed runs (default 50)
//   --output-dir DIR      write each output of the last run to DIR/NAME.npy
// Prints one JSON object: {"median_ms", "min_ms", "runs", "threads", "ort_version", "outputs": {NAME: dims}}.
// graphOptimizationLevel is 'all' (ORT's default for its own benchmarks): its fusions and layout changes.

"use strict";
const fs = require("fs");
const path = require("path");
const ort = require("onnxruntime-node");

function parseArgs(argv) {
  const a = { inputs: {}, shapes: {}, seed: 0, threads: 1, warmup: 5, runs: 50, outputDir: null, model: null };
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i];
    const v = argv[i + 1];
    const pair = () => {
      const at = v.indexOf("=");
      if (at < 0) throw new Error(`${k} expects NAME=VALUE, got ${v}`);
      return [v.slice(0, at), v.slice(at + 1)];
    };
    if (k === "--model") a.model = v;
    else if (k === "--input") { const [n, f] = pair(); a.inputs[n] = f; }
    else if (k === "--shape") { const [n, d] = pair(); a.shapes[n] = parseInt(d, 10); }
    else if (k === "--seed") a.seed = parseInt(v, 10);
    else if (k === "--threads") a.threads = parseInt(v, 10);
    else if (k === "--warmup") a.warmup = parseInt(v, 10);
    else if (k === "--runs") a.runs = parseInt(v, 10);
    else if (k === "--output-dir") a.outputDir = v;
    else throw new Error(`unknown option ${k}`);
    ++i;
  }
  if (!a.model) throw new Error("--model is required");
  return a;
}

const NPY_TYPES = {
  "<f4": ["float32", Float32Array], "<i8": ["int64", BigInt64Array], "<i4": ["int32", Int32Array],
  "|b1": ["bool", Uint8Array], "|u1": ["uint8", Uint8Array],
};

function readNpy(file) {
  const buf = fs.readFileSync(file);
  if (buf.toString("latin1", 1, 6) !== "NUMPY") throw new Error(`${file}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12);
  const header = buf.toString("latin1", start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${file}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(",").map((s) => s.trim()).filter((s) => s).map(Number);
  const t = NPY_TYPES[descr];
  if (!t) throw new Error(`${file}: dtype ${descr} not handled`);
  const data = buf.subarray(start + headerLen);
  const copy = new Uint8Array(data.length);
  copy.set(data);
  const arr = new t[1](copy.buffer, 0, shape.reduce((x, y) => x * y, 1));
  return new ort.Tensor(t[0], t[0] === "bool" ? Uint8Array.from(arr) : arr, shape);
}

function writeNpy(file, tensor) {
  const descr = { float32: "<f4", int64: "<i8", int32: "<i4", bool: "|b1", uint8: "|u1" }[tensor.type];
  if (!descr) throw new Error(`output type ${tensor.type} not handled`);
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${tensor.dims.join(", ")}${
    tensor.dims.length === 1 ? "," : ""}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(pad % 64) + "\n";
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const d = tensor.data;
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, "latin1"), Buffer.from(d.buffer, d.byteOffset, d.byteLength)]));
}

// xorshift32: reproducible random inputs without a dependency.
function rng(seed) {
  let s = (seed * 2654435761 + 1) >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function randomInput(meta, shapes, next) {
  const dims = meta.shape.map((d) => {
    if (typeof d === "number" && d >= 0) return d;
    if (!(d in shapes)) throw new Error(`input ${meta.name}: give --shape ${d}=N`);
    return shapes[d];
  });
  const n = dims.reduce((x, y) => x * y, 1);
  if (meta.type === "float32") return new ort.Tensor("float32", Float32Array.from({ length: n }, () => next() * 2 - 1), dims);
  if (meta.type === "int64") return new ort.Tensor("int64", BigInt64Array.from({ length: n }, () => BigInt(Math.floor(next() * 10))), dims);
  if (meta.type === "int32") return new ort.Tensor("int32", Int32Array.from({ length: n }, () => Math.floor(next() * 10)), dims);
  throw new Error(`input ${meta.name}: type ${meta.type} not handled for random inputs`);
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const session = await ort.InferenceSession.create(a.model, {
    intraOpNumThreads: a.threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    graphOptimizationLevel: "all",
  });
  const next = rng(a.seed);
  const feeds = {};
  const metas = session.inputMetadata || [];
  session.inputNames.forEach((name, i) => {
    if (name in a.inputs) feeds[name] = readNpy(a.inputs[name]);
    else feeds[name] = randomInput({ name, ...metas[i] }, a.shapes, next);
  });
  let results = null;
  for (let i = 0; i < a.warmup; ++i) results = await session.run(feeds);
  const times = [];
  for (let i = 0; i < a.runs; ++i) {
    const t0 = process.hrtime.bigint();
    results = await session.run(feeds);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const sorted = [...times].sort((x, y) => x - y);
  const outputs = {};
  for (const [name, t] of Object.entries(results)) {
    outputs[name] = t.dims;
    if (a.outputDir) writeNpy(path.join(a.outputDir, name + ".npy"), t);
  }
  console.log(JSON.stringify({
    median_ms: sorted[Math.floor(sorted.length / 2)], min_ms: sorted[0], runs: times.length, threads: a.threads,
    ort_version: ort.env.versions ? ort.env.versions.node : "unknown", outputs,
  }));
}

main().catch((e) => {
  console.error(`ort_runner: ${e.message || e}`);
  process.exit(1);
});
