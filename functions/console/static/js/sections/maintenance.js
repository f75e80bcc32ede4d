// Maintenance (CMMS): work orders, assets and spare parts.

import { workOrderList, workOrderNew, workOrderDetail } from '../pages/work-orders.js';
import { assetList, assetNew, assetDetail } from '../pages/assets.js';
import { partList, partNew, partDetail } from '../pages/parts.js';

export default {
  title: 'Maintenance',
  order: 10,
  menu: [
    ['/work-orders', 'Work orders', null],
    ['/assets', 'Assets', null],
    ['/parts', 'Parts', null],
  ],
  routes: [
    ['/work-orders', workOrderList],
    ['/work-orders/new', workOrderNew],
    ['/work-orders/:id', workOrderDetail],
    ['/assets', assetList],
    ['/assets/new', assetNew],
    ['/assets/:id', assetDetail],
    ['/parts', partList],
    ['/parts/new', partNew],
    ['/parts/:id', partDetail],
  ],
};
