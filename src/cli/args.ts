import { InvalidArgumentError as CommanderArgumentError } from 'commander';

/** Option parsers shared by the commands; a bad value is a usage error (exit 2). */
export function parseRevision(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n)) throw new CommanderArgumentError('must be a non-negative integer revision');
  return n;
}

export function parsePositive(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n) || n <= 0) throw new CommanderArgumentError('must be a positive integer');
  return n;
}

export function parseNumber(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n)) throw new CommanderArgumentError('must be a number');
  return n;
}

export function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new CommanderArgumentError('must be a port number 0..65535 (0: any free port)');
  return n;
}
