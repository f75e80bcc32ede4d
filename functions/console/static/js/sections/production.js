// Production (pharma ERP): batches, their lifecycle and metrics.

import { batchDetail, batchList, batchMetrics, batchNew } from '../pages/batches.js';

export default {
  title: 'Production',
  order: 20,
  menu: [
    ['/batches', 'Batches', null],
    ['/batches/metrics', 'Batch metrics', null],
  ],
  routes: [
    ['/batches', batchList],
    ['/batches/new', batchNew],
    ['/batches/metrics', batchMetrics],
    ['/batches/:id', batchDetail],
  ],
};
