import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

/**
 * A private Sendmail on 127.0.0.1 for end-to-end milter tests, next to Postfix without replacing it:
 * install-peers.sh unpacks Debian's sendmail-bin, sendmail-cf and sendmail-base into .peers/sendmail/
 * (installing sendmail-bin would remove postfix). Its .cf is built with m4 from an .mc that listens on a
 * free loopback port only, relays everything to `relayPort`, and sends every message through `milter`.
 *
 * Sendmail qualifies its host name at start-up; on a host without a resolvable FQDN it asks DNS and waits
 * a minute. So it runs in its own mount and UTS namespaces (unshare -m -u), with a private /etc/hosts, an
 * /etc/resolv.conf pointing at a loopback address with no server (fails at once), and the host name
 * smmx.lab.test. The network namespace is the host's, so the test can talk to it on loopback.
 */
export interface SendmailInstance {
  host: '127.0.0.1';
  port: number;
  /** What sendmail wrote on stdout and stderr. */
  output(): string;
  /** Stops sendmail and its children and removes its directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SendmailOptions {
  /** INPUT_MAIL_FILTER socket, in Sendmail's syntax: inet:PORT@127.0.0.1, unix:/path or local:/path. */
  milter: string;
  /** Where every message is relayed (an SMTP server on 127.0.0.1). */
  relayPort: number;
}

const ROOT = fileURLToPath(new URL('../../.peers/sendmail/root/', import.meta.url));
const SENDMAIL = join(ROOT, 'usr/libexec/sendmail/sendmail');
const CF_DIR = join(ROOT, 'usr/share/sendmail/cf/');
const HOSTNAME = 'smmx.lab.test';
const START_TIMEOUT_MS = 15_000;

/** Why Sendmail cannot run here, or undefined when it can. */
export function sendmailUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (namespaces, a daemon that drops privileges)';
  if (!existsSync(SENDMAIL)) return 'not unpacked: run test/support/install-peers.sh';
  if (spawnSync('unshare', ['--version'], { stdio: 'ignore' }).status !== 0) return 'needs unshare(1)';
  return undefined;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** An m4 macro call with quoted arguments: m4 quotes are `...' (a literal $h is Sendmail's host macro). */
const m4 = (macro: string, ...args: string[]): string => `${macro}(${args.map((a) => `\`${a}'`).join(', ')})dnl`;

function mc(dir: string, port: number, options: SendmailOptions): string {
  const relay = `TCP $h ${options.relayPort}`;
  const defines: [string, string][] = [
    ['confDOMAIN_NAME', HOSTNAME],
    ['confDONT_PROBE_INTERFACES', 'True'],
    ['confSERVICE_SWITCH_FILE', `${dir}/etc/service.switch`],
    ['ALIAS_FILE', `${dir}/etc/aliases`],
    ['QUEUE_DIR', `${dir}/mqueue`],
    ['MSP_QUEUE_DIR', `${dir}/clientmqueue`],
    ['STATUS_FILE', `${dir}/statistics`],
    ['confPID_FILE', `${dir}/sendmail.pid`],
    ['confTO_IDENT', '0s'],
    // Deliver in the connection's own process: a background delivery would leave sendmail's process
    // group (setsid) and outlive stop().
    ['confDELIVERY_MODE', 'interactive'],
    // Test sockets live under /tmp: world-writable, but sticky, which this option lets Sendmail trust.
    ['confDONT_BLAME_SENDMAIL', 'TrustStickyBit'],
    ['confBIND_OPTS', '-DNSRCH -DEFNAMES'],
    // Messages up to 32 MB, as the Postfix tests.
    ['confMAX_MESSAGE_SIZE', '33554432'],
    ['SMART_HOST', 'esmtp:[127.0.0.1]'],
    ['ESMTP_MAILER_ARGS', relay],
    ['RELAY_MAILER_ARGS', relay],
    ['SMTP_MAILER_ARGS', relay],
    ['LOCAL_MAILER_PATH', `${ROOT}usr/libexec/sendmail/mail.local`],
  ];
  const features = ['no_default_msa', 'nocanonify', 'accept_unresolvable_domains', 'promiscuous_relay'];
  return [
    'divert(0)dnl',
    m4('VERSIONID', 'milterkit test'),
    m4('OSTYPE', 'linux'),
    ...defines.map(([name, value]) => m4('define', name, value)),
    ...features.map((feature) => m4('FEATURE', feature)),
    m4('DAEMON_OPTIONS', `Family=inet, Name=MTA-test, Port=${port}, Addr=127.0.0.1`),
    // F=T: tempfail when the milter is unreachable (the safe default, as milter_default_action=tempfail).
    m4('INPUT_MAIL_FILTER', 'milterkit', `S=${options.milter}, F=T, T=C:10s;S:30s;R:30s;E:2m`),
    // Sendmail refuses to start without a local mailer, though nothing is delivered locally here.
    m4('MAILER', 'local'),
    m4('MAILER', 'smtp'),
    '',
  ].join('\n');
}

export async function startSendmail(options: SendmailOptions): Promise<SendmailInstance> {
  const unavailable = sendmailUnavailable();
  if (unavailable) throw new Error(`sendmail: ${unavailable}`);
  const dir = await mkdtemp('/tmp/milterkit-sendmail-');
  let child: ChildProcess | undefined;
  let output = '';
  const stop = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      // Sendmail forks a child per connection: signal the whole process group (gone already: nothing to do).
      const signal = (name: NodeJS.Signals): void => {
        try {
          process.kill(-(child?.pid as number), name);
        } catch {
          // ESRCH: the group ended between the check and the signal.
        }
      };
      signal('SIGTERM');
      const killed = setTimeout(() => signal('SIGKILL'), 5000);
      await exited;
      clearTimeout(killed);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const d of ['etc', 'mqueue', 'clientmqueue']) await mkdir(join(dir, d));
    await chmod(join(dir, 'mqueue'), 0o700);
    await writeFile(join(dir, 'etc/hosts'), `127.0.0.1 ${HOSTNAME} smmx localhost\n::1 localhost\n`);
    await writeFile(join(dir, 'etc/resolv.conf'), 'nameserver 127.0.0.1\n');
    await writeFile(join(dir, 'etc/service.switch'), 'hosts files\naliases files\n');
    await writeFile(join(dir, 'etc/aliases'), 'postmaster: root\n');
    await writeFile(join(dir, 'statistics'), '');
    const port = await freePort();
    await writeFile(join(dir, 'test.mc'), mc(dir, port, options));
    const built = spawnSync('m4', [`-D_CF_DIR_=${CF_DIR}`, join(CF_DIR, 'm4/cf.m4'), join(dir, 'test.mc')], { encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`sendmail: m4 failed: ${built.stderr}`);
    await writeFile(join(dir, 'test.cf'), built.stdout);

    const inside = [
      `mount --bind ${dir}/etc/hosts /etc/hosts`,
      `mount --bind ${dir}/etc/resolv.conf /etc/resolv.conf`,
      `hostname ${HOSTNAME}`,
      // -bD: the daemon stays in the foreground, so that this process is sendmail and its group is ours.
      `exec ${SENDMAIL} -bD -C ${dir}/test.cf`,
    ].join(' && ');
    child = spawn('unshare', ['--mount', '--uts', '--propagation', 'private', 'sh', '-c', inside], { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const started = Date.now();
    while (!(await accepts(port))) {
      if (child.exitCode !== null || Date.now() - started > START_TIMEOUT_MS) throw new Error(`sendmail did not start: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { host: '127.0.0.1', port, output: () => output, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
