import { sha256 } from '../../activities/artifacts/hashing';

/**
 * The seeded order segmentation and the random control write, stated on its own for tests to check against: rows
 * sorted by sha256(`<salt>:<id>`), which depends on neither the rows' order nor any RNG.
 */
export const seededOrder = <T extends { id: string }>(rows: T[], salt: string): T[] =>
  rows
    .map((r) => ({ r, k: sha256(`${salt}:${r.id}`) }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .map(({ r }) => r);
