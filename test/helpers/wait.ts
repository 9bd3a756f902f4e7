/** Polls `check` every `every` ms until it returns true or `ms` pass; returns its last answer. */
export async function eventually(check: () => boolean, ms = 3000, every = 50): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, every));
  }
}
