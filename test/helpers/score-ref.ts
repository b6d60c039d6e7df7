import type { SegmentInput } from '../../activities/types';
import type { ObjectStore } from '../../store';

/** What segmentation is told of run `r`'s score step: its two outputs in `store`, and the scores' sha256. */
export const scoreRef = (store: ObjectStore, scoresSha256: string): SegmentInput['score'] => ({
  datasetUri: store.uriFor('r/score/dataset.jsonl'),
  scoresUri: store.uriFor('r/score/scores.jsonl'),
  sha256: scoresSha256,
});
