// Microphone capture for the salmonn-agent page: whatever rate the browser records at, this
// worklet posts 100 ms frames of 16 kHz mono signed 16-bit PCM, with their level in dBFS.
// Resampling averages the input samples that fall in each output sample's span (a box filter),
// which also keeps most content above 8 kHz from folding back into the speech band.

const OUT_RATE = 16000;
const FRAME = 1600; // 100 ms at 16 kHz

class Pcm16kCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / OUT_RATE; // input samples per output sample
    this.phase = 0;
    this.sum = 0;
    this.count = 0;
    this.frame = new Int16Array(FRAME);
    this.filled = 0;
    this.energy = 0;
    if (this.step < 1) {
      this.port.postMessage({ error: `the audio context runs at ${sampleRate} Hz, below 16 kHz` });
    }
  }

  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0 || this.step < 1) return true;
    const n = channels[0].length;
    for (let i = 0; i < n; i++) {
      let x = 0;
      for (const channel of channels) x += channel[i];
      this.sum += x / channels.length;
      this.count += 1;
      this.phase += 1;
      if (this.phase >= this.step) {
        this.phase -= this.step;
        this.push(this.sum / this.count);
        this.sum = 0;
        this.count = 0;
      }
    }
    return true;
  }

  push(sample) {
    const clipped = Math.max(-1, Math.min(1, sample));
    this.energy += clipped * clipped;
    this.frame[this.filled++] = Math.round(clipped * 32767);
    if (this.filled === FRAME) {
      const db = 10 * Math.log10(this.energy / FRAME + 1e-12);
      this.port.postMessage({ pcm: this.frame.buffer, db }, [this.frame.buffer]);
      this.frame = new Int16Array(FRAME);
      this.filled = 0;
      this.energy = 0;
    }
  }
}

registerProcessor("pcm16k-capture", Pcm16kCapture);
