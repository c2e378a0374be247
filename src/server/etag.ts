/** The strong validator of a revision: `"12"`. */
export function etagOf(revision: number): string {
  return `"${revision}"`;
}

export interface EntityTag {
  weak: boolean;
  opaque: string;
}

/** `*` or a list of entity tags (RFC 9110 §8.8.3, §13.1.1). */
export type TagList = '*' | EntityTag[];

// entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE ; etagc = %x21 / %x23-7E / obs-text
const TAG = /[\t ]*(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"[\t ]*/y;

/** A field that is not `*` or a list of entity tags: the detail of the 400 it is answered with. */
export interface MalformedTagList {
  malformed: string;
}

/**
 * Parses If-Match / If-None-Match (`tags` undefined: no such field). A
 * malformed field is a 400, not a silent mismatch: the caller answers it.
 */
export function parseTagList(name: string, raw: string | string[] | undefined): { tags: TagList | undefined } | MalformedTagList {
  if (raw === undefined) return { tags: undefined };
  const value = Array.isArray(raw) ? raw.join(', ') : raw;
  if (value.trim() === '*') return { tags: '*' };
  const tags: EntityTag[] = [];
  let i = 0;
  while (i < value.length) {
    // empty list elements are allowed (RFC 9110 §5.6.1)
    while (i < value.length && (value[i] === ',' || value[i] === ' ' || value[i] === '\t')) i++;
    if (i >= value.length) break;
    TAG.lastIndex = i;
    const m = TAG.exec(value);
    if (!m) return { malformed: `malformed ${name} header: expected "*" or a list of entity tags such as "12"` };
    tags.push({ weak: m[1] !== undefined, opaque: m[2] as string });
    i = TAG.lastIndex;
    if (i < value.length && value[i] !== ',') return { malformed: `malformed ${name} header: entity tags must be separated by commas` };
  }
  if (tags.length === 0) return { malformed: `malformed ${name} header: it is empty` };
  return { tags };
}

/** The revision a revkit ETag stands for, or null when the tag is not one of ours. */
export function revisionOfTag(tag: EntityTag): number | null {
  // "0" is the revision of a key never written (revkit extension: If-Match: "0" creates only a key with no history).
  if (!/^(?:0|[1-9][0-9]{0,15})$/.test(tag.opaque)) return null;
  const n = Number(tag.opaque);
  return Number.isSafeInteger(n) ? n : null;
}

/** If-Match uses the strong comparison: a weak validator never matches. */
export function strongMatch(list: EntityTag[], revision: number): boolean {
  return list.some((t) => !t.weak && revisionOfTag(t) === revision);
}

/** If-None-Match uses the weak comparison. */
export function weakMatch(list: EntityTag[], revision: number): boolean {
  return list.some((t) => revisionOfTag(t) === revision);
}
