import { StrataError } from '@strata/core';

/** Bounds on one properties request. */
export const propertyKeysMax = 256;
export const propertyValuesMax = 1_024;
export const propertyCharsMax = 4_096;

function bad(message: string): StrataError {
  return new StrataError('STRATA_ERR_HTTP_BAD_REQUEST', message);
}

/**
 * Parses Artifactory's `properties=` syntax (already URL-decoded): `;` or `|` separate
 * keys, `,` separates values, `=` separates a key from its values, and a backslash makes the
 * next character literal (`\,` `\|` `\=` `\;` `\\`). `k1=v1,v2;k2=v3` → {k1: [v1, v2], k2: [v3]};
 * a key without `=` gets the single value ''.
 */
export function parsePropertyAssignments(text: string): Record<string, string[]> {
  if (text.length > 64 * 1024) throw bad('properties parameter too long');
  const result: Record<string, string[]> = {};
  let key = '';
  let value = '';
  let values: string[] = [];
  let inValue = false;
  const finishKey = () => {
    if (!inValue && key.trim() === '') return;
    const name = key.trim();
    if (name === '') throw bad(`property without a key in '${text}'`);
    if (name.length > propertyCharsMax) throw bad('property key too long');
    values.push(value);
    if (values.some((v) => v.length > propertyCharsMax)) throw bad('property value too long');
    const existing = result[name] ?? [];
    result[name] = [...existing, ...values];
    if (result[name].length > propertyValuesMax) throw bad('too many property values');
    if (Object.keys(result).length > propertyKeysMax) throw bad('too many properties');
    key = '';
    value = '';
    values = [];
    inValue = false;
  };
  for (let i = 0; i < text.length; i++) {
    let c = text[i]!;
    if (c === '\\' && i + 1 < text.length) {
      c = text[++i]!;
      if (inValue) value += c;
      else key += c;
      continue;
    }
    if (c === ';' || c === '|') finishKey();
    else if (c === '=' && !inValue) inValue = true;
    else if (c === ',' && inValue) {
      values.push(value);
      value = '';
    } else if (inValue) value += c;
    else key += c;
  }
  finishKey();
  for (const name of Object.keys(result)) {
    if (/[\u0000-\u001f]/.test(name)) throw bad('control characters in a property key');
  }
  return result;
}

/** `properties=a,b` of GET/DELETE: property names separated by `,` (backslash escapes). */
export function parsePropertyNames(text: string): string[] {
  const names: string[] = [];
  let current = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length) current += text[++i]!;
    else if (c === ',' || c === ';' || c === '|') {
      if (current.trim() !== '') names.push(current.trim());
      current = '';
    } else current += c;
  }
  if (current.trim() !== '') names.push(current.trim());
  if (names.length > propertyKeysMax) throw bad('too many property names');
  return names;
}

/** The decoded value of one raw query parameter, or undefined when absent (present but empty → ''). */
export function rawQueryParameter(url: string, name: string): string | undefined {
  const queryAt = url.indexOf('?');
  if (queryAt < 0) return undefined;
  for (const pair of url.slice(queryAt + 1).split('&')) {
    const equals = pair.indexOf('=');
    const rawName = equals < 0 ? pair : pair.slice(0, equals);
    if (safeDecode(rawName) !== name) continue;
    return equals < 0 ? '' : safeDecode(pair.slice(equals + 1).replace(/\+/g, '%20'));
  }
  return undefined;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw bad('malformed percent-encoding in the query string');
  }
}
