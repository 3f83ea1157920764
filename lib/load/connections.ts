/**
 * Counts the TCP connections opened to one port, from the kernel's socket tables
 * (/proc/net/tcp and tcp6). A closed connection leaves a TIME_WAIT entry on this host for a minute
 * (client and server both live here, on loopback), so the client ports seen after a window and not
 * before it are the connections the window opened, however short-lived.
 */

const TABLES = ["/proc/net/tcp", "/proc/net/tcp6"];
const LISTEN = "0A";

/** The client-side ports of every socket, in any state but listening, that talks to `port`. */
export function clientPorts(port: number, tables?: string[]): Set<number> | undefined {
  const texts: string[] = [];
  if (tables) texts.push(...tables);
  else {
    for (const path of TABLES) {
      try {
        texts.push(Deno.readTextFileSync(path));
      } catch {
        // tcp6 may be absent
      }
    }
    if (texts.length === 0) return undefined;
  }
  const ports = new Set<number>();
  for (const text of texts) {
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] === LISTEN) continue;
      const local = parseInt(f[1]!.split(":").at(-1)!, 16);
      const remote = parseInt(f[2]!.split(":").at(-1)!, 16);
      if (remote === port) ports.add(local);
      else if (local === port) ports.add(remote);
    }
  }
  return ports;
}

/** How many of `after`'s client ports are new since `before`. */
export function opened(before: Set<number> | undefined, after: Set<number> | undefined): number | undefined {
  if (!before || !after) return undefined;
  let n = 0;
  for (const p of after) if (!before.has(p)) n++;
  return n;
}
