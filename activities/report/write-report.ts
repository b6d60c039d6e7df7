import { allowedLocation, openStore, type ObjectStore } from '../../store';
import type { ActivityDeps } from '../deps';
import { hashInputs } from '../artifacts/hashing';
import { readManifest } from '../artifacts/manifest';
import { evaluateKeys, reportKeys } from '../artifacts/run-keys';
import { runStep } from '../artifacts/step';
import type { StepRef } from '../types';
import { renderReportHtml } from './report-html';
import { renderReportMarkdown } from './report-markdown';
import { resultsMarkdown } from '../results/report';
import { loadRunReportData } from './run-data';

export interface ReportResult {
  markdownUri: string;
  htmlUri: string;
  reused: boolean;
}

/** The report's text and page for a run, from its artifacts in `store`: what the step writes and the CLI prints. */
export async function buildRunReport(
  store: ObjectStore,
  runId: string,
): Promise<{ markdown: string; html: string; table: string }> {
  const data = await loadRunReportData(store, runId);
  return { markdown: renderReportMarkdown(data), html: renderReportHtml(data), table: resultsMarkdown(data) };
}

/**
 * report.md and a self-contained report.html beside the run's other artifacts, after evaluation. The step is keyed by
 * the evaluation it reports on (its manifest's outputs), so a re-run reuses it and a new evaluation refreshes it.
 */
export async function writeReport(deps: ActivityDeps, input: StepRef): Promise<ReportResult> {
  const store = openStore(allowedLocation(input.store, deps.fileRoots, 'input.store'), deps.env);
  const keys = reportKeys(input.runId);
  const evaluation = await readManifest<unknown>(store, evaluateKeys(input.runId).manifest);
  const inputsHash = hashInputs({ evaluation: evaluation?.outputs.map((o) => o.sha256) ?? null });
  return runStep(
    store,
    { runId: input.runId, step: 'report', key: keys.manifest, inputsHash },
    async (out) => {
      const { markdown, html } = await buildRunReport(store, input.runId);
      await out.put(keys.markdown, markdown);
      await out.put(keys.html, html);
      return { markdownUri: store.uriFor(keys.markdown), htmlUri: store.uriFor(keys.html), reused: false };
    },
    { heartbeat: () => ({ step: 'report' }) },
  );
}
