// Source (git commit logger): tracked repositories, their commits with the agents' analysis,
// commit statistics, GitHub webhook deliveries and the monitor that polls for missed commits.

import { commitDetail, commitList, commitStatistics } from '../pages/commits.js';
import { deliveryDetail, deliveryList } from '../pages/deliveries.js';
import { monitorPage } from '../pages/monitor.js';
import { repositoryDetail, repositoryList, repositoryNew } from '../pages/repositories.js';

export default {
  title: 'Source',
  order: 50,
  menu: [
    ['/repositories', 'Repositories', null],
    ['/commits', 'Commits', null],
    ['/commits/statistics', 'Commit statistics', null],
    ['/deliveries', 'Webhook deliveries', null],
    ['/monitor', 'Monitor', null],
  ],
  routes: [
    ['/repositories', repositoryList],
    ['/repositories/new', repositoryNew],
    ['/repositories/:owner/:name', (ctx) => repositoryDetail(ctx)],
    ['/commits', commitList],
    ['/commits/statistics', commitStatistics],
    ['/commits/:sha', commitDetail],
    ['/deliveries', deliveryList],
    ['/deliveries/:id', deliveryDetail],
    ['/monitor', monitorPage],
  ],
};
