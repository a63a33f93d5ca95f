// Play NES APU register writes through jsnes' APU (npm jsnes 3.0.0, clocked per CPU cycle).
//
//   node benchmarks/vgm_play.mjs JSNES_DIR EVENTS.bin OUT.f32
//
// EVENTS.bin: little-endian records (int32 sample time at 44.1 kHz, uint8 register 0x00-0x17,
// uint8 value), the last record's register 0xFF marking the song's end; benchmarks/vgm_fidelity.py
// writes it from a VGM with lakhnes.formats.vgm.parse. OUT.f32: mono float32 samples at 44.1 kHz.
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const [jsnesDir, eventsPath, outPath] = process.argv.slice(2);
const { NES } = await import(pathToFileURL(`${jsnesDir}/src/index.js`).href);
const RATE = 44100;
const CPU_HZ = 1789772.5;
const out = [];
const nes = new NES({ sampleRate: RATE, emulateSound: true, onAudioSample: (l) => out.push(l) });
const papu = nes.papu;
papu.setPanning([128, 128, 128, 128, 128]); // mono: every channel centred
papu.setMasterVolume(256);
const buf = readFileSync(eventsPath);
const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
let end = 0;
for (let i = 0; i + 6 <= buf.length; i += 6) {
  const t = view.getInt32(i, true), reg = buf[i + 4], val = buf[i + 5];
  nes.cpu.cycles = Math.round((t * CPU_HZ) / RATE);
  papu.catchUp(nes.cpu.cycles);
  if (reg === 0xff) { end = t; break; }
  papu.writeReg(0x4000 + reg, val);
}
const samples = Float32Array.from(out.slice(0, end));
writeFileSync(outPath, Buffer.from(samples.buffer));
