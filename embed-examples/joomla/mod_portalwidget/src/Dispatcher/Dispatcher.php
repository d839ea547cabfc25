<?php

/**
 * Renders the module: tmpl/default.php with `$portal`, what PortalWidgetHelper made of the
 * module's options for this page; nothing at all where the launcher does not show.
 */

namespace Portal\Module\PortalWidget\Site\Dispatcher;

\defined('_JEXEC') or die;

use Joomla\CMS\Dispatcher\AbstractModuleDispatcher;
use Joomla\CMS\Helper\HelperFactoryAwareInterface;
use Joomla\CMS\Helper\HelperFactoryAwareTrait;

class Dispatcher extends AbstractModuleDispatcher implements HelperFactoryAwareInterface
{
    use HelperFactoryAwareTrait;

    protected function getLayoutData()
    {
        $data = parent::getLayoutData();
        $portal = $this->getHelperFactory()
            ->getHelper('PortalWidgetHelper')
            ->getPortalData($data['params'], $this->getApplication());
        if ($portal === null) {
            return false; // the dispatcher renders nothing
        }
        $data['portal'] = $portal;
        return $data;
    }
}
