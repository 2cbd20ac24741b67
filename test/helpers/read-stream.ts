/** Reads a response body to the end, noting how long after the first chunk the last one came. */
export async function readStream(res: Response): Promise<{ text: string; firstToLastMs: number }> {
  const reader = res.body!.getReader();
  const first = await reader.read();
  const firstAt = Date.now();
  let text = first.value ? Buffer.from(first.value).toString() : '';
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) break;
    text += Buffer.from(chunk.value).toString();
  }
  return { text, firstToLastMs: Date.now() - firstAt };
}
