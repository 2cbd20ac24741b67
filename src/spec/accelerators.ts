/** `"A100:2"` → { name: 'A100', count: 2 }; `"L4"` → count 1; absent → undefined. Pure. */
export function parseAccelerators(text?: string): { name: string; count: number } | undefined {
  if (!text) return undefined;
  const [name, count] = text.split(':');
  return { name, count: count === undefined ? 1 : Number(count) };
}
