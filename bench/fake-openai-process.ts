/**
 * The tests' fake OpenAI server in a process of its own, driven over IPC: a real endpoint does not share the
 * measured step's CPU, so the throughput benchmark must not make it. Replies with a score to scoring prompts and a
 * verdict to judging prompts.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { startFakeOpenAI, type ServerBehaviour } from '../test/helpers/fake-openai';

type Command = { id: number; behave?: ServerBehaviour; rateLimited?: true; stop?: true };

export interface RemoteFakeOpenAI {
  baseURL: string;
  behave(behaviour: ServerBehaviour): Promise<void>;
  rateLimited(): Promise<number>;
  stop(): Promise<void>;
}

export async function startRemoteFakeOpenAI(apiKey: string, behaviour: ServerBehaviour): Promise<RemoteFakeOpenAI> {
  const child: ChildProcess = fork(__filename, [apiKey, JSON.stringify(behaviour)], {
    execArgv: ['-r', 'ts-node/register/transpile-only'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const [ready] = (await once(child, 'message')) as [{ baseURL: string }];
  let next = 0;
  const ask = async (command: Omit<Command, 'id'>): Promise<number> => {
    const id = ++next;
    child.send({ id, ...command });
    for (;;) {
      const [reply] = (await once(child, 'message')) as [{ id: number; value: number }];
      if (reply.id === id) return reply.value;
    }
  };
  return {
    baseURL: ready.baseURL,
    behave: async (b) => void (await ask({ behave: b })),
    rateLimited: () => ask({ rateLimited: true }),
    stop: async () => {
      await ask({ stop: true });
      if (child.exitCode === null) await once(child, 'exit');
    },
  };
}

async function serve(apiKey: string, behaviour: ServerBehaviour): Promise<void> {
  const llm = await startFakeOpenAI({ apiKey, ...behaviour });
  llm.handle((req) => {
    if (String(req.messages[0].content).includes('checking the quality')) return { content: '7 8' };
    return { content: '3.5' };
  });
  process.on('message', (command: Command) => {
    void (async () => {
      let value = 0;
      if (command.behave) llm.behave(command.behave);
      if (command.rateLimited) value = llm.rateLimited;
      if (command.stop) await llm.stop();
      process.send!({ id: command.id, value });
      if (command.stop) process.disconnect();
    })();
  });
  process.send!({ baseURL: llm.baseURL });
}

if (require.main === module) void serve(process.argv[2], JSON.parse(process.argv[3]) as ServerBehaviour);
