/*
** campaign.h - `tidepool campaign check|preview FILE`: load a campaign script
** as the host would, on a copy of the brand's data, and report its problems
** as FILE:LINE: message, or what it will do when (see campaign.c).
*/
#ifndef TP_CAMPAIGN_H
#define TP_CAMPAIGN_H

extern const char tpcmd_usage_campaign[];
/* Exit status: 0 clean, 1 a problem was reported, 2 usage or set-up error. */
int tpcmd_campaign(int argc, char **argv);

#endif
