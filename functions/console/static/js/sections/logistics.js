// Logistics (package tracking): packages and their scans, the live dashboard and map (realtime
// streams), and the agents' investigations.

import { packageList, packageNew, packageDetail } from '../pages/packages.js';
import { liveDashboard } from '../pages/live.js';
import { packageMap } from '../pages/map.js';
import { investigationList, investigationNew, investigationDetail } from '../pages/investigations.js';

export default {
  title: 'Logistics',
  order: 30,
  menu: [
    ['/packages', 'Packages', null],
    ['/logistics/live', 'Live dashboard', null],
    ['/logistics/map', 'Map', null],
    ['/logistics/investigations', 'Investigations', null],
  ],
  routes: [
    ['/packages', packageList],
    ['/packages/new', packageNew],
    ['/packages/:id', packageDetail],
    ['/logistics/live', liveDashboard],
    ['/logistics/map', packageMap],
    ['/logistics/investigations', investigationList],
    ['/logistics/investigations/new', investigationNew],
    ['/logistics/investigations/:id', investigationDetail],
  ],
};
