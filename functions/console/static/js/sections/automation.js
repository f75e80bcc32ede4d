// Automation (ops automation): targets, jobs, runs with live output, schedules.

import { jobDetail, jobEdit, jobList, jobNew } from '../pages/jobs.js';
import { runDetail, runList, runNew } from '../pages/runs.js';
import { scheduleDetail, scheduleList, scheduleNew } from '../pages/schedules.js';
import { targetDetail, targetList, targetNew } from '../pages/targets.js';

export default {
  title: 'Automation',
  order: 40,
  menu: [
    ['/targets', 'Targets', null],
    ['/jobs', 'Jobs', null],
    ['/runs', 'Runs', null],
    ['/schedules', 'Schedules', null],
  ],
  routes: [
    ['/targets', targetList],
    ['/targets/new', targetNew],
    ['/targets/:id', targetDetail],
    ['/jobs', jobList],
    ['/jobs/new', jobNew],
    ['/jobs/:id', jobDetail],
    ['/jobs/:id/edit', jobEdit],
    ['/runs', runList],
    ['/runs/new', runNew],
    ['/runs/:id', runDetail],
    ['/schedules', scheduleList],
    ['/schedules/new', scheduleNew],
    ['/schedules/:id', scheduleDetail],
  ],
};
