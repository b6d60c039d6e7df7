import assert from 'node:assert/strict';
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'mocha';
import { fullCollection } from '../activities/full-collection';

describe('fullCollection', () => {
  it('runs a full (mark-compact) collection, each time it is called', async () => {
    const majors: PerformanceEntry[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries())
        if (
          (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR
        )
          majors.push(e);
    });
    observer.observe({ entryTypes: ['gc'] });
    try {
      fullCollection();
      fullCollection();
      // GC entries are delivered asynchronously.
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      observer.disconnect();
    }
    assert.ok(majors.length >= 2, `expected 2 full collections, saw ${majors.length}`);
  });

  it('leaves no gc function in contexts made afterwards (the workflows’ sandboxes)', () => {
    fullCollection();
    assert.equal(runInNewContext('typeof gc'), 'undefined');
  });
});
