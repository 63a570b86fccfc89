import { describe, expect, it, vi } from 'vitest';

import { ServerConnection } from '@jupyterlab/services';

import {
  EventStreamParser,
  IRunEvent,
  LiveRuns,
  RunEventStream,
  asRunEvent,
  fraction
} from './events';

const base = {
  run_id: 5,
  task_id: 2,
  owner: 'alice'
};

describe('asRunEvent', () => {
  it('takes run events only', () => {
    expect(
      asRunEvent({ ...base, action: 'started', status: 'running' })
    ).toEqual({
      action: 'started',
      run_id: 5,
      task_id: 2,
      owner: 'alice',
      status: 'running'
    });
    expect(
      asRunEvent({
        ...base,
        action: 'step',
        status: 'running',
        step_id: 3,
        step_kind: 'job',
        step_name: 'report',
        step_status: 'succeeded'
      })
    ).toMatchObject({ action: 'step', step_id: 3, step_status: 'succeeded' });
    expect(asRunEvent({ ...base, status: 'running' })).toBeNull();
    expect(
      asRunEvent({ ...base, action: 'exploded', status: 'running' })
    ).toBeNull();
    expect(
      asRunEvent({ ...base, run_id: '5', action: 'started', status: 'running' })
    ).toBeNull();
    expect(asRunEvent(null)).toBeNull();
  });
});

describe('LiveRuns', () => {
  it('follows a run from start through progress to its end', () => {
    const live = new LiveRuns();
    live.apply(asRunEvent({ ...base, action: 'started', status: 'running' })!);
    expect(live.active(2).map(run => run.runId)).toEqual([5]);
    const progress = asRunEvent({
      ...base,
      action: 'progress',
      status: 'running',
      step_id: 9,
      done: 2,
      total: 4,
      message: 'cell 2 of 4'
    })!;
    const run = live.apply(progress);
    expect(run.steps[9]).toEqual({ done: 2, total: 4, message: 'cell 2 of 4' });
    expect(fraction(run.steps[9])).toBe(0.5);
    live.apply(
      asRunEvent({ ...base, action: 'finished', status: 'succeeded' })!
    );
    expect(live.get(5)?.status).toBe('succeeded');
    expect(live.active()).toEqual([]);
  });

  it('forgets old ended runs', () => {
    const live = new LiveRuns();
    for (let id = 1; id <= 5; id++) {
      live.apply(
        asRunEvent({
          ...base,
          run_id: id,
          action: 'finished',
          status: 'failed'
        })!
      );
    }
    live.prune(2);
    expect(live.get(5)).toBeDefined();
    expect(live.get(3)).toBeUndefined();
  });
});

describe('EventStreamParser', () => {
  it('splits messages however the chunks cut them, skipping heartbeats', () => {
    const parser = new EventStreamParser();
    const text =
      'retry: 3000\n: connected\n\nevent: run\ndata: {"a":\ndata: 1}\n\n' +
      ': heartbeat\n\r\nevent: run\r\ndata: {"b": 2}\r\n\r\n';
    const messages = [];
    for (const piece of text.match(/[\s\S]{1,3}/g)!) {
      messages.push(...parser.feed(piece));
    }
    expect(messages).toEqual([
      { event: 'run', data: '{"a":\n1}' },
      { event: 'run', data: '{"b": 2}' }
    ]);
  });
});

/** A fetch answering each call with the next of `bodies` streamed, recording its URL. */
function fakeFetch(
  bodies: (string[] | number)[],
  urls: string[]
): typeof fetch {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : (input as Request).url;
    urls.push(url.replace(/[?&]\d+$/, '')); // Lab's cache buster
    const accept = new Headers((input as Request).headers ?? init?.headers).get(
      'Accept'
    );
    expect(accept).toBe('text/event-stream');
    const body = bodies.shift();
    if (body === undefined) {
      return new Promise<Response>(() => undefined); // never answers: the test ends
    }
    if (typeof body === 'number') {
      return new Response('{"message": "no"}', { status: body });
    }
    const encoder = new TextEncoder();
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of body) {
          controller.enqueue(encoder.encode(chunk));
        }
        controller.close();
      }
    });
    return new Response(stream, {
      headers: { 'Content-Type': 'text/event-stream' }
    });
  }) as typeof fetch;
}

describe('RunEventStream', () => {
  it('delivers run events, reconnects after an end or a refusal, and stops', async () => {
    const urls: string[] = [];
    const started = '{"action": "started", "run_id": 5, "task_id": 2, ';
    const rest = '"owner": "alice", "status": "running"}';
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://127.0.0.1:1/base/',
      fetch: fakeFetch(
        [
          [': connected\n\n', `event: run\ndata: ${started}`, `${rest}\n\n`],
          503,
          ['event: run\ndata: not json\n\n', `event: other\ndata: {}\n\n`],
          [`event: run\ndata: ${started}${rest}\n\n`]
        ],
        urls
      )
    });
    const events: IRunEvent[] = [];
    let connects = 0;
    const stream = new RunEventStream({
      settings,
      onEvent: event => events.push(event),
      onConnect: () => connects++,
      allOwners: async () => true,
      delays: [1, 1]
    });
    stream.start();
    await vi.waitFor(() => expect(urls.length).toBe(5));
    stream.dispose();
    expect(events.map(event => [event.action, event.run_id])).toEqual([
      ['started', 5],
      ['started', 5]
    ]);
    expect(connects).toBe(3); // the refused one does not count
    expect(urls[0]).toBe(
      'http://127.0.0.1:1/base/taskplanner/api/events?all=true'
    );
  });

  it('asks for the own runs only unless told all', async () => {
    const urls: string[] = [];
    const settings = ServerConnection.makeSettings({
      baseUrl: 'http://127.0.0.1:1/',
      fetch: fakeFetch([], urls)
    });
    const stream = new RunEventStream({
      settings,
      onEvent: () => undefined,
      allOwners: async () => false
    });
    stream.start();
    await vi.waitFor(() => expect(urls.length).toBe(1));
    stream.dispose();
    expect(urls).toEqual(['http://127.0.0.1:1/taskplanner/api/events']);
  });
});
