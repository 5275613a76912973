/**
 * Log fields as plain JSON data: what a plugin puts in its log fields may hold anything (a function, a
 * cycle, a BigInt), and a log line, or a message to another thread, must never fail on it.
 */
export function jsonFields(fields: Readonly<Record<string, unknown>>): Record<string, unknown> {
  try {
    return JSON.parse(JSON.stringify(fields)) as Record<string, unknown>;
  } catch {
    return Object.fromEntries(Object.keys(fields).map((key) => [key, jsonValue(() => fields[key])]));
  }
}

function jsonValue(read: () => unknown): unknown {
  try {
    const value = read();
    return JSON.parse(JSON.stringify(value) ?? 'null') as unknown;
  } catch {
    try {
      return String(read());
    } catch {
      return '(unreadable)';
    }
  }
}
