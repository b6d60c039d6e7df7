import { ScoringEstimate, type CostEstimate, type Messages } from '../../activities/llm/cost-estimate';

/** Scoring's estimate of every row's messages at once, as the score step counts them row by row. */
export function estimateScoring(
  requests: Iterable<Messages>,
  opts: ConstructorParameters<typeof ScoringEstimate>[0],
): CostEstimate {
  const counted = new ScoringEstimate(opts);
  for (const messages of requests) counted.add(messages);
  return counted.result();
}
