/**
 * A private, loopback-only Postfix for integration tests.
 *
 * Each instance lives in its own temp dir (config, queue, data, Maildirs, log) and is run with
 * `postfix -c <dir>/conf`, so several can run side by side with the system's (unconfigured) Postfix. Postfix needs
 * no `multi_instance_*` settings for that: those only serve postmulti(1); what keeps instances apart is a distinct
 * config_directory, queue_directory (master.pid, sockets, queue), data_directory (master.lock) and inet port.
 *
 * Needs root (Postfix's master drops privileges itself) and the `postfix` package; see .ci/run.
 */
import { execFile } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './free-port.js';

export interface PostfixOptions {
  /** Local parts that get a Maildir; every other recipient in `domain` is refused at RCPT (550 5.1.1). */
  users: string[];
  /** Default 'lab.test'. */
  domain?: string;
  /** smtpd_milters value: inet:127.0.0.1:PORT or unix:/path (the socket must be reachable by user postfix). */
  milter?: string;
  /** milter_default_action when the milter is unreachable or misbehaves. Default 'tempfail'. */
  milterDefaultAction?: 'tempfail' | 'accept' | 'reject';
  /** Extra or overriding main.cf settings. */
  extraMainCf?: Record<string, string>;
}

export interface PostfixInstance {
  host: '127.0.0.1';
  port: number;
  domain: string;
  /** The temp dir holding everything of this instance. */
  dir: string;
  /** The messages in the user's Maildir new/, oldest first. */
  delivered(user: string): Promise<Buffer[]>;
  /** Resolves once the user has at least `count` messages; rejects (with the log tail) after `timeoutMs`. */
  waitForDelivery(user: string, count: number, timeoutMs: number): Promise<Buffer[]>;
  /** Postfix's log so far. */
  log(): string;
  /** Stops Postfix and its children and removes `dir`. Safe to call twice. */
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const POSTFIX_COMMAND_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;
const START_ATTEMPTS = 3;

/** Process groups of instances not stopped yet, killed if the test process exits without stop(). */
const running = new Map<number, string>();
process.once('exit', () => {
  for (const [pgid, dir] of running) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

export async function startPostfix(options: PostfixOptions): Promise<PostfixInstance> {
  const domain = options.domain ?? 'lab.test';
  validate(options, domain);
  if (process.getuid?.() !== 0) throw new Error('startPostfix: Postfix must be started as root');

  // Under /tmp, not os.tmpdir(): the daemons run as postfix and nobody and must be able to traverse every parent.
  const dir = await mkdtemp('/tmp/milterkit-postfix-');
  const conf = join(dir, 'conf');
  const queue = join(dir, 'queue');
  const data = join(dir, 'data');
  const mail = join(dir, 'mail');
  const logFile = join(dir, 'postfix.log');
  const log = (): string => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };

  try {
    await chmod(dir, 0o755); // mkdtemp makes it 0700
    for (const d of [conf, queue, data, mail]) await mkdir(d);
    // virtual(8) delivers as nobody (it refuses root); data_directory must belong to mail_owner.
    const [nobodyUid, nobodyGid, postfixUid] = await Promise.all([
      id('-u', 'nobody'),
      id('-g', 'nobody'),
      id('-u', 'postfix'),
    ]);
    await chown(mail, nobodyUid, nobodyGid);
    await chown(data, postfixUid, -1);
    // texthash: is read as plain text, so no postmap. Paths are relative to virtual_mailbox_base; the trailing
    // slash makes them Maildirs.
    await writeFile(join(conf, 'vmailbox'), options.users.map((u) => `${u}@${domain}\t${domain}/${u}/\n`).join(''));

    const mainCf: Record<string, string> = {
      compatibility_level: '3.6',
      queue_directory: queue,
      data_directory: data,
      // No syslog in containers: log to a file through postlogd (the "postlog" service in master.cf).
      maillog_file: logFile,
      maillog_file_prefixes: dir,

      // Loopback only, and never a DNS lookup: names are fixed here, and peers are not resolved.
      myhostname: `mail.${domain}`,
      mydomain: domain,
      inet_interfaces: HOST,
      inet_protocols: 'ipv4',
      mynetworks: '127.0.0.0/8',
      smtp_dns_support_level: 'disabled',
      lmtp_dns_support_level: 'disabled',
      smtpd_peername_lookup: 'no',
      // Nothing is local(8) and nothing leaves the box: bounces and postmaster notices go to discard(8). Even with
      // DNS disabled, the smtp client would still call getaddrinfo(), which can ask DNS.
      mydestination: '',
      local_recipient_maps: '',
      alias_maps: '',
      alias_database: '',
      relayhost: '',
      default_transport: 'discard:no mail leaves the test instance',
      relay_transport: 'discard:no mail leaves the test instance',

      // The test domain: listed users get Maildirs, anyone else is refused at RCPT.
      virtual_mailbox_domains: domain,
      virtual_mailbox_base: mail,
      virtual_mailbox_maps: `texthash:${join(conf, 'vmailbox')}`,
      virtual_uid_maps: `static:${nobodyUid}`,
      virtual_gid_maps: `static:${nobodyGid}`,
      smtpd_reject_unlisted_recipient: 'yes',

      // Tests want answers now: no flow-control pause, no tarpit after rejected commands.
      in_flow_delay: '0s',
      smtpd_error_sleep_time: '0s',

      smtpd_milters: options.milter ?? '',
      non_smtpd_milters: '',
      milter_default_action: options.milterDefaultAction ?? 'tempfail',

      ...options.extraMainCf,
    };
    const mainCfText = Object.entries(mainCf).map(([k, v]) => `${k} = ${v}\n`).join('');
    await writeFile(join(conf, 'main.cf'), mainCfText);

    const backdated = new Date(Date.now() - 60_000);
    for (let attempt = 1; ; attempt++) {
      // A free port is only known free until someone else binds it: if master loses that race, pick another.
      const port = await freePort();
      await writeFile(join(conf, 'master.cf'), masterCf(port));
      // Postfix re-reads a config file until it is about 2 s old (load_file(3): "changed recently"), which would
      // cost every command 2 s here; backdating them skips that.
      for (const f of ['main.cf', 'master.cf', 'vmailbox']) await utimes(join(conf, f), backdated, backdated);
      const logStart = log().length;
      try {
        await postfix(conf, 'start');
      } catch (err) {
        const logged = log().slice(logStart);
        if (attempt < START_ATTEMPTS && /Address already in use/.test(logged)) continue;
        // A bad main.cf value can kill the postfix command before it opens its log file; it then reports only to a
        // terminal, so show the config instead.
        const details = logged || `nothing was logged; main.cf:\n${mainCfText}`;
        throw new Error(`postfix start failed: ${(err as Error).message.trim()}\n${details}`);
      }
      // "postfix start" returns once master has bound its sockets (master -w), so the port accepts connections.
      const pgid = Number((await readFile(join(queue, 'pid', 'master.pid'), 'utf8')).trim());
      running.set(pgid, dir);
      return instance(port, pgid);
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  function instance(port: number, pgid: number): PostfixInstance {
    const delivered = async (user: string): Promise<Buffer[]> => {
      const newDir = join(mail, domain, user, 'new');
      let names: string[];
      try {
        names = await readdir(newDir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []; // virtual(8) creates it on first delivery
        throw err;
      }
      return Promise.all(names.sort(byDeliveryTime).map((n) => readFile(join(newDir, n))));
    };
    let stopping: Promise<void> | undefined;
    return {
      host: HOST,
      port,
      domain,
      dir,
      delivered,
      async waitForDelivery(user, count, timeoutMs) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const messages = await delivered(user);
          if (messages.length >= count) return messages;
          if (Date.now() >= deadline) {
            throw new Error(
              `${user}@${domain}: ${messages.length} of ${count} message(s) after ${timeoutMs} ms; log tail:\n` +
                log().split('\n').slice(-30).join('\n'),
            );
          }
          await sleep(50);
        }
      },
      log,
      stop() {
        stopping ??= (async () => {
          // "postfix abort" sends master SIGTERM, and master passes it to its process group. ("postfix stop" does
          // the same, then polls once a second; waiting for the group here is faster.) The dir goes last.
          await postfix(conf, 'abort').catch(() => undefined);
          if (!(await groupGone(pgid, STOP_TIMEOUT_MS))) {
            process.kill(-pgid, 'SIGKILL');
            if (!(await groupGone(pgid, STOP_TIMEOUT_MS))) {
              throw new Error(`Postfix process group ${pgid} survived SIGKILL`);
            }
          }
          running.delete(pgid);
          await rm(dir, { recursive: true, force: true });
        })();
        return stopping;
      },
    };
  }
}

/**
 * Only the services this setup uses, all with chroot = n: Debian's stock master.cf chroots most daemons into the
 * queue directory, which would need copies of /etc files there. smtpd listens on 127.0.0.1:port only.
 */
function masterCf(port: number): string {
  return `# service type  private unpriv  chroot  wakeup  maxproc command + args
${HOST}:${port} inet n  -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`;
}

/**
 * virtual(8) names Maildir files "<sec>.V<dev>I<inode>M<usec>.<host>". Plain name order would sort messages of the
 * same second by inode, so compare the time.
 */
function byDeliveryTime(a: string, b: string): number {
  const time = (name: string): number => {
    const m = /^(\d+)\.V[0-9a-f]+I[0-9a-f]+M(\d+)\./.exec(name);
    return m ? Number(m[1]) * 1e6 + Number(m[2]) : 0;
  };
  return time(a) - time(b) || a.localeCompare(b);
}

function validate(options: PostfixOptions, domain: string): void {
  if (options.users.length === 0) throw new Error('startPostfix: at least one user is needed');
  // They become texthash keys and directory names.
  for (const u of options.users) {
    if (!/^[A-Za-z0-9][A-Za-z0-9._+-]*$/.test(u)) {
      throw new Error(`startPostfix: unsupported user name ${JSON.stringify(u)}`);
    }
  }
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)+$/i.test(domain)) {
    throw new Error(`startPostfix: unsupported domain ${JSON.stringify(domain)}`);
  }
  for (const m of (options.milter ?? '').split(/[\s,]+/).filter(Boolean)) {
    if (!/^(unix:\/\S+|inet:(127\.0\.0\.1|localhost):\d+)$/.test(m)) {
      throw new Error(`startPostfix: milter must be inet:127.0.0.1:PORT or unix:/path, got ${JSON.stringify(m)}`);
    }
  }
  for (const [k, v] of Object.entries(options.extraMainCf ?? {})) {
    if (!/^\w+$/.test(k) || /[\r\n]/.test(v)) {
      throw new Error(`startPostfix: bad main.cf setting ${JSON.stringify(k)}`);
    }
  }
}

/** Runs `postfix -c conf <command>`. Its errors go to the log file; stderr gets them only when it is a tty. */
function postfix(conf: string, command: 'start' | 'abort'): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('postfix', ['-c', conf, command], { timeout: POSTFIX_COMMAND_TIMEOUT_MS }, (err) => {
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') {
        reject(new Error('postfix is not installed (apt-get install postfix; see .ci/run)'));
      } else if (err) {
        reject(err);
      } else {
        resolve();
      }
    });
  });
}

function id(flag: '-u' | '-g', user: string): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('id', [flag, user], { timeout: 5_000 }, (err, stdout) =>
      err ? reject(err) : resolve(Number(stdout.trim())),
    );
  });
}

/**
 * Waits up to timeoutMs until no process of the group is left. Zombies count as gone: master's children die at
 * once, but master itself is reaped by whatever PID 1 is, which in a container can take a second or more.
 */
async function groupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await groupHasLiveProcess(pgid))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(50);
  }
}

async function groupHasLiveProcess(pgid: number): Promise<boolean> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = await readFile(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses, so split after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) === pgid && state !== 'Z') return true;
  }
  return false;
}
