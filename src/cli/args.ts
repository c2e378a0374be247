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

/**
 * A number option (`--incr`): a JSON number literal (`2`, `-2.5`, `1e3`), a
 * leading `+` allowed, that a double holds exactly — checked on the literal
 * with the sign: `+1e-400` is refused like `1e-400` (it would be 0). Hex,
 * binary, octal, `Infinity`, blanks and the like are refused: they are not
 * how a JSON value writes a number.
 */
export function parseNumber(text: string): number {
  const literal = text.startsWith('+') ? text.slice(1) : text;
  if (!JSON_NUMBER.test(literal) || (literal !== text && literal.startsWith('-'))) throw new CommanderArgumentError('must be a number, written as a JSON number (e.g. 5, -2.5, 1e3; a leading + is allowed)');
  const n = Number(literal);
  // A decimal a double cannot hold as written (12345678901234567891, 1e-400, 1e400) would be used rounded.
  if (findUnfaithfulNumber(literal) !== null || !Number.isFinite(n)) {
    const shown = text.length > 40 ? `${text.slice(0, 40)}…` : text;
    throw new CommanderArgumentError(`must be a number a double holds exactly: ${shown} would be used as ${String(n)}`);
  }
  return n;
}

/** RFC 8259's number: no leading zeros, no bare dot, no hex/binary/octal, no blanks. */
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

export function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new CommanderArgumentError('must be a port number 0..65535 (0: any free port)');
  return n;
}
