/** A value a user gave, as messages show it: JSON, cut after 80 characters, so that a message never echoes a 1 MB value back. */
export function showValue(input: unknown): string {
  if (input === undefined) return 'nothing';
  const text = JSON.stringify(input) ?? String(input);
  return text.length <= 80 ? text : `${text.slice(0, 60)}… (${text.length} characters)`;
}
