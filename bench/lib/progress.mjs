// One updating line on a terminal, plain lines otherwise (CI logs, pipes).
export function progress(total, { stream = process.stdout } = {}) {
  const tty = Boolean(stream.isTTY);
  const started = performance.now();
  let done = 0;
  let current = '';
  let detail = '';
  let timer;
  const fmt = (ms) => `${Math.floor(ms / 60000)}:${String(Math.floor((ms % 60000) / 1000)).padStart(2, '0')}`;
  const draw = () => {
    const elapsed = performance.now() - started;
    const line = `[${done}/${total}] ${fmt(elapsed)} ${current}${detail ? ` · ${detail}` : ''}`;
    const width = (stream.columns ?? 120) - 1;
    stream.write(`\r\x1b[2K${line.length > width ? `${line.slice(0, width - 1)}…` : line}`);
  };
  if (tty) {
    timer = setInterval(draw, 250);
    timer.unref();
  }
  return {
    start(label) {
      current = label;
      detail = '';
      if (tty) draw();
      else stream.write(`[${done + 1}/${total}] ${label}\n`);
    },
    tick(text) {
      detail = text;
      if (tty) draw();
    },
    finish(summary) {
      done++;
      if (!tty && summary) stream.write(`        ${summary}\n`);
      if (tty) draw();
    },
    note(text) {
      if (tty) stream.write(`\r\x1b[2K${text}\n`);
      else stream.write(`${text}\n`);
      if (tty) draw();
    },
    end() {
      if (timer) clearInterval(timer);
      if (tty) stream.write('\r\x1b[2K');
    },
  };
}
