import { InvalidArgumentError as CommanderArgumentError } from 'commander';
import { findUnfaithfulNumber } from '../core/json-numbers.js';

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
  // A decimal a double cannot hold as written (12345678901234567891) would be used rounded.
  const literal = text.trim();
  if (/^-?\d+(\.\d+)?([eE][+-]?\d+)?$/.test(literal) && findUnfaithfulNumber(literal) !== null) {
    throw new CommanderArgumentError(`must be a number a double holds exactly: ${literal.length > 40 ? `${literal.slice(0, 40)}…` : literal} would be used as ${JSON.stringify(n)}`);
  }
  return n;
}

export function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new CommanderArgumentError('must be a port number 0..65535 (0: any free port)');
  return n;
}
