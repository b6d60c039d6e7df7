export * from './phased-ift-pipeline';
export * from './messages';
