import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { PIFT_STEP } from '../common/constants';
import { FailureType, failureTypeOf } from '../common/failures';
import { progressQuery, type Progress } from './messages';

/** What a run shows while it runs: the `progress` query, the PiftStep search attribute and the Web UI's details. */
export class RunProgress {
  readonly state: Progress;

  constructor(runId: string) {
    this.state = { runId, step: 'validate', finished: [] };
    setHandler(progressQuery, () => this.state);
  }

  enter(step: string, stage?: number): void {
    this.state.step = step;
    this.state.stage = stage;
    upsertSearchAttributes([{ key: PIFT_STEP, value: step }]);
    setCurrentDetails(currentDetails(this.state));
  }

  finish(...steps: string[]): void {
    this.state.finished.push(...steps);
  }

  /** The run's end: the step 'done', and the evaluation's tables (and report) in the Web UI's details. */
  done(markdown?: string): void {
    this.enter('done');
    if (markdown !== undefined) setCurrentDetails(`${currentDetails(this.state)}\n\n${markdown}`);
  }

  /** Records a cancellation or failure where clients look, and hands the error back to be rethrown. */
  async failed(err: unknown): Promise<unknown> {
    if (isCancellation(err)) {
      this.state.step = 'cancelled';
      setCurrentDetails(currentDetails(this.state));
      // The search attribute update must still happen on a cancelled workflow.
      await CancellationScope.nonCancellable(async () =>
        upsertSearchAttributes([{ key: PIFT_STEP, value: 'cancelled' }]),
      );
      return err;
    }
    const error = describeFailure(err);
    this.state.error = error;
    // Bad input is the user's to fix and is already in the failure; anything else is the operator's concern.
    const badInput = failureTypeOf(err) === FailureType.BadInput;
    (badInput ? log.warn : log.error)('pipeline failed', { step: this.state.step, error });
    upsertSearchAttributes([{ key: PIFT_STEP, value: 'failed' }]);
    this.state.step = 'failed';
    setCurrentDetails(`${currentDetails(this.state)}\n\n${error}`);
    return err;
  }
}

/** The run's current details in the Web UI (Markdown): the step, and what is finished. */
function currentDetails(p: Progress): string {
  const stage = p.stage && p.stages ? ` (stage ${p.stage} of ${p.stages})` : '';
  const done = p.finished.length ? `\n\nFinished: ${p.finished.join(', ')}` : '';
  return `**Step:** ${p.step}${stage}${done}`;
}

function describeFailure(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return describeFailure(err.cause);
  if (err instanceof ApplicationFailure) return `${err.type ?? 'Error'}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}
